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
        # Linear interpolation along one axis is a matrix with two non-zeros a row, so each pass is a
        # small matrix product (BLAS) instead of gathers and full-size temporaries.
        wz, wy, wx = (
            self._weights(n, coord) for n, coord in ((2, w.z.ravel()), (1, w.y.ravel()), (0, w.x.ravel()))
        )
        out = np.tensordot(wz, self.coarse, axes=(1, 0))  # (nz, cy, cx)
        out = np.matmul(wy, out)  # (nz, ny, cx)
        return np.matmul(out, wx.T)  # (nz, ny, nx)

    def _weights(self, n: int, coord: FloatArray) -> FloatArray:
        """Interpolation matrix from the coarse lattice to `coord` along patient axis n."""
        size = self.coarse.shape[2 - n]
        pos = (coord.astype(np.float64) - self.lo[n]) / self.step
        base = np.clip(np.floor(pos).astype(np.int64), 0, size - 2)
        frac = np.clip(pos - base, 0.0, 1.0)
        weights = np.zeros((coord.size, size), dtype=np.float32)
        rows = np.arange(coord.size)
        weights[rows, base] = 1.0 - frac
        weights[rows, base + 1] = frac
        return weights
