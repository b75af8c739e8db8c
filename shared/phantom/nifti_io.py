"""Lesion masks as NIfTI, aligned with the DICOM series they belong to.

DICOM positions are LPS; NIfTI affines are RAS. Voxel (i, j, k) of the mask is column i, row j,
slice k of the series (slices from feet to head), and the affine maps it to RAS millimetres, so any
reader (nibabel, SimpleITK, 3D Slicer) overlays mask and series without guessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from shared.phantom.grid import Grid

if TYPE_CHECKING:  # study imports this module's neighbours: only the type is needed here
    from shared.phantom.study import Study


def ras_affine(grid: Grid) -> NDArray[np.float64]:
    dx, dy, dz = grid.spacing
    x0, y0, z0 = grid.origin
    return np.array(
        [[-dx, 0.0, 0.0, -x0], [0.0, -dy, 0.0, -y0], [0.0, 0.0, dz, z0], [0.0, 0.0, 0.0, 1.0]],
        dtype=np.float64,
    )


def site_volume(study: Study) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.uint8]]:
    """A study as a site reads it from its DICOM, in `preprocess`'s order: the HU volume as
    [column, row, slice], its RAS affine, and the mask (the phantom holds [slice, row, column])."""
    hu = np.ascontiguousarray(study.hu.transpose(2, 1, 0)).astype(np.float32)
    mask = np.ascontiguousarray(study.mask.transpose(2, 1, 0))
    return hu, ras_affine(study.grid), mask


def write_mask(path: Path, mask: NDArray[np.uint8], grid: Grid) -> None:
    """`mask` is [slice, row, column] like the phantom's volumes."""
    image = nib.Nifti1Image(np.ascontiguousarray(mask.transpose(2, 1, 0)).astype(np.uint8), ras_affine(grid))
    image.set_qform(ras_affine(grid), code=1)
    image.set_sform(ras_affine(grid), code=1)
    image.header.set_xyzt_units("mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}")
    nib.save(image, tmp)
    tmp.replace(path)


def read_mask(path: Path) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """Back to [slice, row, column] plus the RAS affine."""
    image = cast(nib.Nifti1Image, nib.load(path))
    data = np.asarray(image.dataobj).astype(np.uint8).transpose(2, 1, 0)
    return data, image.affine
