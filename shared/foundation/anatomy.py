"""A foundation's public anatomy bank: boxes of public chest CT, stored with the networks.

A 3D latent diffusion model small enough to train on two CPU cores draws texture, not a chest (see
the shipped foundation's samples); public CT itself is a chest. So a foundation may carry a bank of
public boxes, exactly as the site preprocessing cut them, for `lesionstats` to paint each class's
lesion into: the idea of label-free tumour synthesis (Hu et al., CVPR 2023), where real healthy
scans take synthetic tumours. The bank is public data, like the corpus it comes from (the card names
its sources), so it costs no privacy budget; it holds no mediastinal mass and no class label.

Boxes are stored as uint8 in window units (a 400 HU window in 255 steps: 1.6 HU, below CT noise),
which keeps 32 boxes of the CPU box under 5 MB. Drawing shifts a box by up to two voxels along
each axis, so the same public patient is rarely drawn twice at the same place.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import shift

MAX_SHIFT_VOXELS = 2
LEVELS = 255.0


def to_bank(images: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Boxes in window units ([-1, 1]) as the bank stores them."""
    scaled = (np.clip(np.asarray(images, dtype=np.float32), -1.0, 1.0) + 1.0) / 2.0 * LEVELS
    return np.rint(scaled).astype(np.uint8)


def from_bank(bank: NDArray[np.uint8]) -> NDArray[np.float32]:
    return (bank.astype(np.float32) / LEVELS * 2.0 - 1.0).astype(np.float32)


def draw_anatomy(bank: NDArray[np.uint8], count: int, rng: np.random.Generator) -> NDArray[np.float32]:
    """`count` boxes of public anatomy: every bank box once before any twice (in a random order),
    each moved by a random whole-voxel shift, the edge repeated into the gap."""
    if len(bank) == 0:
        raise ValueError("the anatomy bank is empty")
    order = np.concatenate([rng.permutation(len(bank)) for _ in range(-(-count // len(bank)))])[:count]
    out = np.empty((count, *bank.shape[1:]), dtype=np.float32)
    for k, index in enumerate(order):
        offset = rng.integers(-MAX_SHIFT_VOXELS, MAX_SHIFT_VOXELS + 1, size=3)
        out[k] = shift(from_bank(bank[index]), offset, order=0, mode="nearest")
    return out
