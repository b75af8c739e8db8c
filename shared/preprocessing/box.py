"""DESIGN.md's preprocessing as a MONAI `Compose` of small named steps.

HU volume -> RAS orientation -> the mediastinum found on a coarse copy -> the region around it
cut out -> resampled to the site's spacing -> the exact box centred on the mediastinum -> the
window scaled to [-1, 1]. The box (x, y, z voxels, RAS) is sized to hold the whole mediastinum
and the paravertebral gutters, thoracic inlet to diaphragm: a cube of 128 mm, the first design,
left a third of pericardial cysts and a sixth of paravertebral tumours entirely outside. The mask,
when there is one, follows the image through the same geometry with nearest-neighbour
interpolation. An error names the step it came from.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, MapTransform, Orientationd, ScaleIntensityRanged, Spacingd
from numpy.typing import NDArray

from shared.crop_box import Box, box_mm, box_text
from shared.errors import FedsynthError
from shared.preprocessing.mediastinum import IncompleteChest, MediastinumNotFound, locate

IMAGE, MASK = "image", "mask"
AIR_HU = -1024.0
LOCATE_SPACING_MM = 4.0
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))  # axcodes read as nibabel does: "R" means towards the right


class BoxSpec(Protocol):
    """The box a site trains on: a site's `[preprocessing]` settings, or a phantom dataset's request."""

    @property
    def box(self) -> Box: ...
    @property
    def spacing_mm(self) -> float: ...
    @property
    def window_hu(self) -> tuple[float, float]: ...


class PreprocessingError(FedsynthError):
    """A preprocessing step failed; the message names the step, `check` the ingestion check."""

    def __init__(self, message: str, *, check: str = "preprocessing") -> None:
        super().__init__(message)
        self.check = check


@dataclass
class Preprocessed:
    image: NDArray[np.float32]  # the box, values in [-1, 1]
    mask: NDArray[np.uint8] | None
    affine: NDArray[np.float64]  # of the box, RAS
    centre_ras: tuple[float, float, float]  # where the crop is centred, in scanner RAS millimetres


def _spacing(affine: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(np.linalg.norm(affine[:3, :3], axis=0))


def _shifted(affine: NDArray[np.float64], start: list[int]) -> NDArray[np.float64]:
    """The affine of a sub-volume whose voxel 0 is voxel `start` of the original."""
    moved = affine.copy()
    moved[:3, 3] = affine[:3, :3] @ np.asarray(start, dtype=np.float64) + affine[:3, 3]
    return moved


def _tensor(volume: NDArray[Any], affine: NDArray[np.float64]) -> MetaTensor:
    return MetaTensor(torch.from_numpy(volume)[None], affine=torch.from_numpy(affine))


def _voxel_of(affine: NDArray[np.float64], point_mm: tuple[float, float, float]) -> NDArray[np.float64]:
    return np.asarray((np.linalg.inv(affine) @ np.array([*point_mm, 1.0]))[:3])


class FindMediastinumd(MapTransform):
    """Locate the mediastinum on a copy decimated to about 4 mm (enough to find lungs, 50x cheaper)."""

    def __init__(self) -> None:
        super().__init__(IMAGE)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image: MetaTensor = d[IMAGE]
        affine = image.affine.numpy().astype(np.float64)
        step = np.maximum(1, np.round(LOCATE_SPACING_MM / _spacing(affine))).astype(int)
        coarse = image[0].numpy()[:: step[0], :: step[1], :: step[2]]
        centre = np.asarray(locate(np.ascontiguousarray(coarse))) * step
        d["centre_ras"] = tuple(float(v) for v in (affine @ np.array([*centre, 1.0]))[:3])
        return d


class CutAroundd(MapTransform):
    """Keep only `half_mm` (per axis, plus a margin) around the centre, in the source grid."""

    def __init__(self, keys: tuple[str, ...], half_mm: tuple[float, float, float]) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.half_mm = half_mm

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            tensor: MetaTensor = d[key]
            affine = tensor.affine.numpy().astype(np.float64)
            centre = _voxel_of(affine, d["centre_ras"])
            reach = np.asarray(self.half_mm) / _spacing(affine) + 2  # two voxels more for the interpolation
            shape = tensor.shape[1:]
            lo = [int(max(0, np.floor(c - r))) for c, r in zip(centre, reach, strict=True)]
            hi = [int(min(n, np.ceil(c + r) + 1)) for c, r, n in zip(centre, reach, shape, strict=True)]
            if any(a >= b for a, b in zip(lo, hi, strict=True)):
                raise MediastinumNotFound("the mediastinum was placed outside the scanned volume")
            box = tensor[0].numpy()[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
            d[key] = _tensor(np.ascontiguousarray(box), _shifted(affine, lo))
        return d


class CropBoxd(MapTransform):
    """The exact box of `size` voxels centred on the mediastinum; outside the scan is air."""

    def __init__(self, keys: tuple[str, ...], size: Box) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.size = size

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            tensor: MetaTensor = d[key]
            affine = tensor.affine.numpy().astype(np.float64)
            centre = _voxel_of(affine, d["centre_ras"])
            start = [round(c) - n // 2 for c, n in zip(centre, self.size, strict=True)]
            fill = AIR_HU if key == IMAGE else 0.0
            box = _crop_with_fill(tensor[0].numpy(), start, self.size, fill)
            d[key] = _tensor(box, _shifted(affine, start))
        return d


def _crop_with_fill(volume: NDArray[Any], start: list[int], size: Box, fill: float) -> NDArray[Any]:
    out = np.full(size, fill, dtype=volume.dtype)
    src, dst = [], []
    for axis, first in enumerate(start):
        lo, hi = max(first, 0), min(first + size[axis], volume.shape[axis])
        if lo >= hi:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - first, hi - first))
    out[tuple(dst)] = volume[tuple(src)]
    return out


def build_steps(settings: BoxSpec) -> list[tuple[str, MapTransform]]:
    """The named steps, in order."""
    spacing = settings.spacing_mm
    low, high = settings.window_hu
    keys = (IMAGE, MASK)
    x_mm, y_mm, z_mm = box_mm(settings.box, settings.spacing_mm)
    half_mm = (x_mm / 2.0, y_mm / 2.0, z_mm / 2.0)
    shape = box_text(settings.box)
    return [
        ("orient to RAS", Orientationd(keys=keys, axcodes="RAS", labels=RAS_LABELS, allow_missing_keys=True)),
        ("find the mediastinum", FindMediastinumd()),
        # Resampling only what the box can contain is what makes a 512 x 512 series cheap.
        ("cut out the region around it", CutAroundd(keys, half_mm)),
        (
            f"resample to {spacing:g} mm",
            Spacingd(
                keys=keys,
                pixdim=(spacing,) * 3,
                mode=("bilinear", "nearest"),
                padding_mode="border",
                allow_missing_keys=True,
            ),
        ),
        (f"crop the {shape} box", CropBoxd(keys, settings.box)),
        (
            f"window [{low:g}, {high:g}] HU to [-1, 1]",
            ScaleIntensityRanged(keys=IMAGE, a_min=low, a_max=high, b_min=-1.0, b_max=1.0, clip=True),
        ),
    ]


def build_pipeline(settings: BoxSpec) -> tuple[Compose, list[str]]:
    """The steps as one MONAI `Compose` (usable with MONAI's own tools), with their names."""
    steps = build_steps(settings)
    return Compose([step for _, step in steps]), [name for name, _ in steps]


def preprocess(
    hu: NDArray[np.float32],
    affine: NDArray[np.float64],
    mask: NDArray[np.uint8] | None,
    settings: BoxSpec,
) -> Preprocessed:
    data: dict[Hashable, Any] = {IMAGE: _tensor(hu, affine)}
    if mask is not None:
        data[MASK] = _tensor(mask.astype(np.float32), affine)
    pipeline, names = build_pipeline(settings)
    # Run the Compose one transform at a time, so that an error can name the step it came from.
    for name, step in zip(names, pipeline.transforms, strict=True):
        try:
            data = step(data)
        except FedsynthError as exc:
            check = "incomplete-chest" if isinstance(exc, IncompleteChest) else "preprocessing"
            raise PreprocessingError(f"preprocessing step '{name}': {exc}", check=check) from None
        except Exception as exc:
            raise PreprocessingError(
                f"preprocessing step '{name}' failed: {type(exc).__name__}: {exc}"
            ) from exc
    image = data[IMAGE]
    out_mask = None
    if MASK in data:
        out_mask = (data[MASK][0].numpy() > 0.5).astype(np.uint8)
    return Preprocessed(
        image=image[0].numpy().astype(np.float32),
        mask=out_mask,
        affine=image.affine.numpy().astype(np.float64),
        centre_ras=data["centre_ras"],
    )
