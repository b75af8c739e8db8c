"""Decode a checked series into a volume of Hounsfield units with its RAS affine.

Stored values become HU through RescaleSlope/Intercept; padding outside the reconstruction circle
(PixelPaddingValue) becomes air; everything is clipped to the CT range. The fingerprint covers the
instances and their pixel bytes, so re-ingesting an unchanged series is recognised without
preprocessing it again, and any change to a single pixel makes a new version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pydicom
from numpy.typing import NDArray

from site_agent.ingest.checks import Geometry, SeriesRejected

HU_MIN, HU_MAX = -1024.0, 3071.0
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class HuVolume:
    hu: NDArray[np.float32]  # [column, row, slice]: voxel (i, j, k) is column i, row j, slice k
    affine: NDArray[np.float64]  # voxel -> RAS millimetres
    spacing: tuple[float, float, float]  # (between columns, between rows, between slices)
    fingerprint: str

    @property
    def hu_range(self) -> tuple[float, float]:
        return float(self.hu.min()), float(self.hu.max())


def lps_affine(geometry: Geometry) -> NDArray[np.float64]:
    """Voxel (column, row, slice) -> LPS millimetres, from positions and orientation only."""
    row_spacing, column_spacing = geometry.pixel_spacing
    affine = np.eye(4)
    affine[:3, 0] = geometry.row_direction * column_spacing  # along a row: next column
    affine[:3, 1] = geometry.column_direction * row_spacing  # down a column: next row
    affine[:3, 2] = geometry.normal * geometry.slice_spacing
    affine[:3, 3] = geometry.origin
    return affine


def decode_slice(geometry: Geometry, index: int) -> tuple[NDArray[np.float32], bytes]:
    instance = geometry.instances[index]
    try:
        ds = pydicom.dcmread(instance.path)
        raw = ds.pixel_array
    except Exception as exc:  # any decoder failure is this file's fault, not the run's
        raise SeriesRejected(
            "pixel-data", f"pixel data cannot be decoded ({type(exc).__name__})", instance
        ) from None
    if raw.shape != (geometry.rows, geometry.columns):
        raise SeriesRejected(
            "pixel-data",
            f"pixel data has shape {raw.shape}, header says {geometry.rows}x{geometry.columns}",
            instance,
        )
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    hu = raw.astype(np.float32) * slope + intercept
    padding = ds.get("PixelPaddingValue")
    if padding is not None:
        hu[raw == padding] = HU_MIN
    return np.clip(hu, HU_MIN, HU_MAX), bytes(ds.PixelData)


def load_hu(geometry: Geometry) -> HuVolume:
    digest = hashlib.sha256()
    slices = []
    for index, instance in enumerate(geometry.instances):
        hu, pixel_bytes = decode_slice(geometry, index)
        digest.update(instance.sop_uid.encode())
        digest.update(hashlib.sha256(pixel_bytes).digest())
        slices.append(hu)
    volume = np.stack(slices, axis=-1).transpose(
        1, 0, 2
    )  # (rows, columns, slices) -> (columns, rows, slices)
    row_spacing, column_spacing = geometry.pixel_spacing
    return HuVolume(
        hu=np.ascontiguousarray(volume),
        affine=LPS_TO_RAS @ lps_affine(geometry),
        spacing=(column_spacing, row_spacing, geometry.slice_spacing),
        fingerprint=digest.hexdigest(),
    )
