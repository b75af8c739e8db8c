"""A picture a person can check: axial, coronal and sagittal slices through a study's lesion."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.classes import DISPLAY_NAMES
from shared.phantom.study import Study
from shared.three_views import Plane, save_three_views

WINDOW = (-160.0, 240.0)  # mediastinal window: level 40, width 400


def focus_voxel(study: Study) -> tuple[int, int, int]:
    """The lesion's centre of mass, or the anterior mediastinum at the carina for a normal study."""
    mask = study.mask
    if mask.any():
        return tuple(round(float(np.mean(axis))) for axis in np.nonzero(mask))  # type: ignore[return-value]
    g = study.grid
    k = int(
        np.clip(round((study.landmarks.carina[2] + 25.0 - g.origin[2]) / g.spacing[2]), 0, g.shape[0] - 1)
    )
    i = int(
        np.clip(round((study.landmarks.aorta_front_y - 10.0 - g.origin[1]) / g.spacing[1]), 0, g.shape[1] - 1)
    )
    return k, i, g.shape[2] // 2


def write_preview(study: Study, path: Path) -> None:
    k, i, j = focus_voxel(study)
    g = study.grid
    aspect = g.spacing[2] / g.spacing[0]
    mask = study.mask
    planes = [
        Plane("axial", study.hu[k], mask[k]),
        Plane("coronal", study.hu[:, i, :][::-1], mask[:, i, :][::-1], aspect),  # head at the top
        Plane("sagittal", study.hu[:, :, j][::-1], mask[:, :, j][::-1], aspect),
    ]
    lesion = study.lesion
    size = f", {lesion.diameter_mm:.0f} mm" if lesion.diameter_mm else ""
    where = f", {lesion.compartment}" if lesion.compartment else ""
    features = f"; {', '.join(lesion.features)}" if lesion.features else ""
    title = (
        f"{DISPLAY_NAMES.get(study.label, study.label)} ({lesion.subtype}{where}{size}{features})\n"
        f"profile {study.profile.name}, {'contrast' if study.body.contrast else 'no contrast'}, "
        f"voxels {g.spacing[0]:.2f} x {g.spacing[1]:.2f} x {g.spacing[2]:.2f} mm; red: lesion mask"
    )
    save_three_views(planes, title, path, window=WINDOW)
