"""What a radiologist reads off a segmented mediastinal mass, as numbers: the case-level features the
segmenter's head classifies from.

The segmenter finds the lesion well (its Dice is 0.7-0.8 on held-out phantom patients), but its
per-voxel class vote confuses the four prevascular masses, which differ less by where they are than
by what they are made of: fat and calcium in a teratoma, water in a cyst, necrosis and an irregular
margin in a thymic carcinoma, homogeneous soft tissue in a thymoma (`../shared/DESIGN.md`, the
phantom's lesions; the same signs radiologists use). So from the predicted lesion region we measure
its size, its attenuation mix in HU bands, where it lies in the box, how ragged its margin is and in
how many pieces it comes, beside the segmenter's own class shares. These are a few dozen numbers a
small linear head can learn from tens of patients per class (`shared.diagnosis.head`).
"""

from __future__ import annotations

import re

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage

from shared.errors import FedsynthError

# HU bands of the mass's composition (fat, fluid, soft tissue, enhancing or calcified).
FAT_MAX_HU = -30.0
FLUID_HU = (-20.0, 25.0)
SOFT_TISSUE_HU = (25.0, 90.0)
DENSE_MIN_HU = 150.0
LESION_PROBABILITY = 0.5


class IntensityError(FedsynthError):
    """A dataset or model whose intensity description names no HU window."""


def window_of(intensity: str) -> tuple[float, float]:
    """The HU window of a card's intensity text, e.g. "CT window [-160, 240] HU scaled to [-1, 1]"."""
    found = re.search(r"window \[(-?[\d.]+), (-?[\d.]+)\] HU", intensity)
    if found is None:
        raise IntensityError(f"intensity {intensity!r} names no 'window [low, high] HU'")
    low, high = float(found.group(1)), float(found.group(2))
    if low >= high:
        raise IntensityError(f"intensity {intensity!r}: the window's low end is not below its high end")
    return low, high


def feature_names(lesion_classes: tuple[str, ...]) -> tuple[str, ...]:
    return (
        "lesion_present",
        "log_volume_ml",
        "peak_probability",
        *(f"share_{c}" for c in lesion_classes),
        "mean_hu",
        "sd_hu",
        "p10_hu",
        "p50_hu",
        "p90_hu",
        "fat_fraction",
        "fluid_fraction",
        "soft_tissue_fraction",
        "dense_fraction",
        "centroid_x",
        "centroid_y",
        "centroid_z",
        "margin_roughness",
        "log_pieces",
    )


def lesion_features(
    images: NDArray[np.float32],
    softmax: torch.Tensor,
    *,
    window_hu: tuple[float, float],
    voxel_ml: float,
) -> NDArray[np.float32]:
    """(N, F) features of N cases from their images (N, X, Y, Z) in [-1, 1] and the segmenter's
    voxel probabilities (N, 1 + L, X, Y, Z); a case with no predicted lesion has zeros but its
    peak probability. HU values are scaled by 1/100 and volumes taken as logs, so the head's
    inputs are of order one before it standardises them."""
    low, high = window_hu
    lesion = (1.0 - softmax[:, 0]).numpy()
    shares = softmax[:, 1:].numpy()
    n, lesions = shares.shape[0], shares.shape[1]
    out = np.zeros((n, len(feature_names(("",) * lesions))), dtype=np.float32)
    box = np.asarray(images.shape[1:], dtype=np.float64)
    for i in range(n):
        region = lesion[i] > LESION_PROBABILITY
        out[i, 2] = lesion[i].max()
        count = int(region.sum())
        if count == 0:
            continue
        hu = low + (images[i][region].astype(np.float64) + 1.0) / 2.0 * (high - low)
        class_mass = shares[i][:, region].sum(1)
        eroded = ndimage.binary_erosion(region)
        _, pieces = ndimage.label(region)
        centroid = np.argwhere(region).mean(0) / box
        out[i, :3] = (1.0, np.log1p(count * voxel_ml), lesion[i].max())
        out[i, 3 : 3 + lesions] = class_mass / class_mass.sum()
        out[i, 3 + lesions :] = (
            hu.mean() / 100.0,
            hu.std() / 100.0,
            *(np.percentile(hu, [10, 50, 90]) / 100.0),
            (hu < FAT_MAX_HU).mean(),
            ((hu >= FLUID_HU[0]) & (hu < FLUID_HU[1])).mean(),
            ((hu >= SOFT_TISSUE_HU[0]) & (hu < SOFT_TISSUE_HU[1])).mean(),
            (hu >= DENSE_MIN_HU).mean(),
            *centroid,
            (count - int(eroded.sum())) / count ** (2.0 / 3.0),  # surface per volume^(2/3): 4.8 for a ball
            np.log(pieces),
        )
    return out
