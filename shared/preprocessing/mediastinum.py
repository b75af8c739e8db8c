"""Find the mediastinum from the body and the lungs, never from labels.

Works on a RAS-oriented volume in HU (axis 0 to the patient's right, 1 to the front, 2 to the
head). The body is the largest connected object denser than -500 HU (the table, separated by air,
is a different object); the lungs are the large air-filled objects inside it; the mediastinum lies
between the lungs' inner borders.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from shared.errors import FedsynthError


class MediastinumNotFound(FedsynthError):
    """The volume does not look like a chest CT: no body, or no lungs."""


def body_mask(hu: NDArray[np.float32]) -> NDArray[np.bool_]:
    dense = hu > -500
    labels, count = ndimage.label(dense)
    if count == 0:
        raise MediastinumNotFound("no body found (nothing denser than -500 HU)")
    sizes = ndimage.sum_labels(dense, labels, index=np.arange(1, count + 1))
    body = labels == (int(np.argmax(sizes)) + 1)
    filled = np.empty_like(body)
    for z in range(body.shape[2]):  # lungs are holes in each axial slice of the body
        filled[:, :, z] = ndimage.binary_fill_holes(body[:, :, z])
    return filled


def lung_mask(hu: NDArray[np.float32], body: NDArray[np.bool_]) -> NDArray[np.bool_]:
    air = (hu < -400) & body
    air = ndimage.binary_opening(air, iterations=1)
    labels, count = ndimage.label(air)
    if count == 0:
        raise MediastinumNotFound("no lungs found inside the body")
    sizes = ndimage.sum_labels(air, labels, index=np.arange(1, count + 1))
    largest = np.argsort(sizes)[::-1][:2]
    keep = [
        int(i) + 1 for i in largest if sizes[i] >= 0.1 * sizes[largest[0]]
    ]  # not the trachea or bowel gas
    return np.isin(labels, keep)


def locate(hu: NDArray[np.float32]) -> tuple[float, float, float]:
    """Voxel coordinates of the mediastinum's centre.

    Height: the middle of the lungs' extent, about the level of the carina and great vessels,
    where mediastinal masses cluster. (The centre of mass of all mediastinal tissue would sit in
    the heart, and a cube around it would miss most prevascular masses.) Across: halfway between
    the lungs' inner borders; front to back: halfway between the front and back of the lungs;
    both as medians over the middle half of the lungs' height.
    """
    body = body_mask(hu)
    lungs = lung_mask(hu, body)
    lung_slices = lungs.sum(axis=(0, 1))
    if lung_slices.max() == 0:
        raise MediastinumNotFound("no lungs found inside the body")
    levels = np.nonzero(lung_slices > 0.1 * lung_slices.max())[0]
    low, high = int(levels.min()), int(levels.max())
    centre_z = (low + high) / 2.0
    quarter = (high - low) / 4.0
    middle = [z for z in levels if abs(z - centre_z) <= quarter]
    midline = float(np.mean(np.nonzero(body)[0]))
    xs, ys = [], []
    for z in middle:
        low_side = lungs[: int(midline), :, z]  # one lung on each side of the body's midline
        high_side = lungs[int(midline) :, :, z]
        if not low_side.any() or not high_side.any():
            continue
        # Across: halfway between the lungs' inner borders (their voxels closest to the midline).
        inner_low = int(np.max(np.nonzero(low_side)[0]))
        inner_high = int(midline) + int(np.min(np.nonzero(high_side)[0]))
        xs.append((inner_low + inner_high) / 2.0)
        # Front to back: halfway between the front and the back of the lungs, so the cube reaches
        # both the prevascular space behind the sternum and the paravertebral gutters.
        rows = np.nonzero(lungs[:, :, z].any(axis=0))[0]
        ys.append((float(rows.min()) + float(rows.max())) / 2.0)
    if not xs:
        raise MediastinumNotFound("no level with a lung on each side of the body")
    centre_x, centre_y = float(np.median(xs)), float(np.median(ys))
    return float(centre_x), float(centre_y), float(centre_z)
