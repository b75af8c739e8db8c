"""What the scanner does to the true attenuation: slice profile, reconstruction kernel, correlated
noise, calibration offset, the reconstruction circle, and integer storage.

Noise is specified per profile at its native voxel size and scaled by sqrt(native / actual voxel
volume), so a phantom written at a coarse demo matrix has the noise a real scan averaged down to
that voxel size would have. Bigger patients are noisier (fewer photons reach the detector).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from shared.phantom.anatomy import Body
from shared.phantom.grid import FloatArray, Grid
from shared.phantom.profiles import ScannerProfile

NATIVE_MATRIX = 512
HU_MIN, HU_MAX = -1024, 3071


def native_pixel_spacing(profile: ScannerProfile, body: Body) -> float:
    """The pixel spacing an operator would pick at 512x512 so the whole body fits the field of view."""
    needed = (2.0 * body.half_width + 40.0) / NATIVE_MATRIX
    lo, hi = profile.pixel_spacing_mm
    return float(np.clip(needed, lo, hi))


def noise_sigma(profile: ScannerProfile, body: Body, grid: Grid, native_spacing: float) -> float:
    native_volume = native_spacing**2 * profile.slice_spacing_mm
    actual_volume = grid.spacing[0] * grid.spacing[1] * grid.spacing[2]
    return profile.noise_hu * (body.width * body.depth) ** 1.5 * float(np.sqrt(native_volume / actual_volume))


def acquire(
    hu: FloatArray,
    grid: Grid,
    profile: ScannerProfile,
    body: Body,
    rng: np.random.Generator,
    native_spacing: float,
) -> NDArray[np.int16]:
    dx, _, _ = grid.spacing
    out = ndimage.gaussian_filter1d(hu, sigma=0.42, axis=0, mode="nearest")  # slice sensitivity profile
    blur_mm = float(np.hypot(profile.kernel_blur_mm, 0.4 * dx))  # kernel, plus anti-aliasing at coarse pixels
    sigma_px = blur_mm / dx
    out = ndimage.gaussian_filter(out, sigma=(0.0, sigma_px, sigma_px), mode="nearest")
    if profile.edge_enhancement > 0:
        wide = ndimage.gaussian_filter(out, sigma=(0.0, 2.5 * sigma_px, 2.5 * sigma_px), mode="nearest")
        out += profile.edge_enhancement * (out - wide)

    noise = rng.standard_normal(grid.shape, dtype=np.float32)
    grain_px = max(0.6 / dx, 0.3)  # CT noise is correlated over about 0.6 mm in-plane
    noise = ndimage.gaussian_filter(noise, sigma=(0.0, grain_px, grain_px), mode="wrap")
    noise *= noise_sigma(profile, body, grid, native_spacing) / (float(noise.std()) + 1e-12)
    out += noise
    out += profile.hu_offset

    stored = np.clip(np.rint(out), HU_MIN, HU_MAX).astype(np.int16)
    radius = grid.shape[2] * dx / 2.0  # reconstruction circle of the field of view
    x, y = grid.axis(0), grid.axis(1)
    outside = (x[None, :] ** 2 + y[:, None] ** 2) > radius**2
    stored[:, outside] = int(profile.padding_hu) if profile.padding_hu is not None else HU_MIN
    return stored
