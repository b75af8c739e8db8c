"""Smooth random fields: lung parenchyma, fat strands, tumour heterogeneity, necrosis.

A field is white noise on a coarse lattice (spacing = correlation length), blurred, and read at
any voxel by separable linear interpolation. It is defined in millimetres, so the same patient
looks the same at 0.7 mm or 4 mm voxels, and it costs time only where it is sampled.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from shared.phantom.grid import FloatArray, Grid, Window


class SmoothField:
    """Zero-mean, unit-variance smooth noise over a grid's extent."""

    def __init__(self, rng: np.random.Generator, grid: Grid, correlation_mm: float) -> None:
        self.step = float(correlation_mm)
        lo = [grid.origin[n] - 2 * self.step for n in range(3)]
        counts = [int(np.ceil(grid.shape[2 - n] * grid.spacing[n] / self.step)) + 5 for n in range(3)]
        self.lo = lo
        coarse = rng.standard_normal((counts[2], counts[1], counts[0])).astype(np.float32)
        coarse = ndimage.gaussian_filter(coarse, sigma=0.8, mode="wrap")
        coarse -= coarse.mean()
        coarse /= coarse.std() + 1e-12
        self.coarse = coarse

    def sample(self, w: Window) -> FloatArray:
        out = self.coarse
        # Interpolate along z, then y, then x: each pass shrinks one axis to the window's size.
        for array_axis, coord in ((0, w.z.ravel()), (1, w.y.ravel()), (2, w.x.ravel())):
            n = 2 - array_axis
            pos = (coord - self.lo[n]) / self.step
            base = np.clip(np.floor(pos).astype(np.int64), 0, out.shape[array_axis] - 2)
            frac = (pos - base).astype(np.float32)
            shape = [1, 1, 1]
            shape[array_axis] = -1
            frac = frac.reshape(shape)
            out = (
                np.take(out, base, axis=array_axis) * (1 - frac)
                + np.take(out, base + 1, axis=array_axis) * frac
            )
        return out.astype(np.float32, copy=False)
