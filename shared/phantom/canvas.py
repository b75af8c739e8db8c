"""The volume a phantom patient is painted on: Hounsfield units plus a tissue label per voxel.

The tissue map is the phantom's ground truth. The lesion mask is `tissue == LESION`, and the
tests compare what the DICOM files say with each tissue's nominal range below (DESIGN.md).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from shared.phantom.grid import BoolArray, FloatArray, Grid, Shape, Window


class Tissue(IntEnum):
    AIR = 0
    TABLE = 1
    SKIN = 2
    SUBCUTANEOUS_FAT = 3
    MUSCLE = 4
    LUNG = 5
    LUNG_VESSEL = 6
    AIRWAY = 7
    AIRWAY_WALL = 8
    MEDIASTINAL_FAT = 9
    HEART = 10
    BLOOD = 11
    OESOPHAGUS = 12
    THYMUS = 13
    LYMPH_NODE = 14
    BONE_CORTICAL = 15
    BONE_CANCELLOUS = 16
    SPINAL_CANAL = 17
    DISC = 18
    ABDOMEN = 20
    EFFUSION = 21
    LESION = 22


# Nominal HU of each tissue before the scanner adds blur, noise and calibration offset:
# (without contrast, with contrast). Ranges from DESIGN.md, "The CT phantom".
NOMINAL_HU: dict[Tissue, tuple[tuple[float, float], tuple[float, float]]] = {
    Tissue.AIR: ((-1000, -1000), (-1000, -1000)),
    Tissue.SKIN: ((20, 50), (20, 50)),
    Tissue.SUBCUTANEOUS_FAT: ((-120, -80), (-120, -80)),
    Tissue.MUSCLE: ((40, 60), (45, 70)),
    Tissue.LUNG: ((-900, -780), (-900, -780)),
    Tissue.LUNG_VESSEL: ((30, 50), (120, 250)),
    Tissue.AIRWAY: ((-1000, -950), (-1000, -950)),
    Tissue.AIRWAY_WALL: ((30, 50), (30, 50)),
    Tissue.MEDIASTINAL_FAT: ((-120, -80), (-120, -80)),
    Tissue.HEART: ((30, 50), (80, 130)),
    Tissue.BLOOD: ((35, 50), (150, 250)),
    Tissue.OESOPHAGUS: ((30, 50), (40, 70)),
    Tissue.THYMUS: ((-110, -30), (-110, -20)),
    Tissue.LYMPH_NODE: ((30, 50), (50, 90)),
    Tissue.BONE_CORTICAL: ((700, 1000), (700, 1000)),
    Tissue.BONE_CANCELLOUS: ((250, 400), (250, 400)),
    Tissue.SPINAL_CANAL: ((0, 25), (0, 25)),
    Tissue.DISC: ((60, 100), (60, 100)),
    Tissue.ABDOMEN: ((45, 65), (90, 130)),
    Tissue.EFFUSION: ((0, 20), (0, 20)),
}


def nominal(tissue: Tissue, contrast: bool, rng: np.random.Generator) -> float:
    lo, hi = NOMINAL_HU[tissue][int(contrast)]
    return float(rng.uniform(lo, hi))


class Canvas:
    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.hu: FloatArray = np.full(grid.shape, -1000.0, dtype=np.float32)
        self.tissue: NDArray[np.uint8] = np.zeros(grid.shape, dtype=np.uint8)

    def paint(
        self,
        shape: Shape | None,
        hu: float | FloatArray,
        tissue: Tissue,
        *,
        only: tuple[Tissue, ...] | None = None,
        mask: BoolArray | None = None,
        window: Window | None = None,
    ) -> int:
        """Set `hu` and `tissue` inside `shape` (or `mask` over `window`); `only` limits what it may cover.

        `hu` is a number, an array over the whole grid, or an array broadcastable to the window.
        Returns the voxels painted.
        """
        if shape is not None:
            lo, hi = shape.bounds()
            window = self.grid.window(lo, hi)
            if window is None:
                return 0
            mask = shape.inside(window)
        if window is None or mask is None:
            raise ValueError("paint needs a shape, or a window and a mask")
        sub_tissue = self.tissue[window.index]
        selected = np.broadcast_to(mask, window.shape)
        if only is not None:
            selected = selected & np.isin(sub_tissue, np.array([int(t) for t in only], dtype=np.uint8))
        sub_tissue[selected] = int(tissue)
        sub_hu = self.hu[window.index]
        if np.isscalar(hu):
            sub_hu[selected] = hu
        else:
            values = np.asarray(hu)
            if values.shape == self.grid.shape:
                values = values[window.index]
            sub_hu[selected] = np.broadcast_to(values, window.shape)[selected]
        return int(selected.sum())
