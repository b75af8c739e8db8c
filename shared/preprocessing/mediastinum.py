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


class IncompleteChest(MediastinumNotFound):
    """A chest CT that stops short of the lung apices or bases: part of the mediastinum is missing."""


# A lung whose section in the last slice but one is larger than this share of its largest section
# runs off the scan: a natural apex or base tapers to almost nothing (the outermost slice itself is
# eroded away by the lung mask's opening, so it cannot be the test).
CUT_OFF_SHARE = 0.05


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


def check_whole_chest(lung_slices: NDArray[np.int64]) -> None:
    """Refuse a series cut off at the apex or at the base: its crop would be half a mediastinum."""
    largest = lung_slices.max()
    if len(lung_slices) < 3 or lung_slices[-2] > CUT_OFF_SHARE * largest:
        raise IncompleteChest(
            "the series starts below the lung apices (the lungs run off its top slice), so the "
            "thoracic inlet and upper mediastinum are missing; send a series that covers the whole chest"
        )
    if lung_slices[1] > CUT_OFF_SHARE * largest:
        raise IncompleteChest(
            "the series ends above the lung bases (the lungs run off its bottom slice), so the lower "
            "mediastinum and cardiophrenic angles are missing; send a series that covers the whole chest"
        )


def locate(hu: NDArray[np.float32]) -> tuple[float, float, float]:
    """Voxel coordinates of the mediastinum's centre, in a series that covers the whole chest.

    Height: the middle of the lungs' extent, apex to base, which the mediastinum spans from the
    thoracic inlet to the diaphragm; the box is tall enough to hold all of it. Across: halfway between
    the lungs' inner borders; front to back: halfway between the front and back of the lungs;
    both as medians over the middle half of the lungs' height.
    """
    body = body_mask(hu)
    lungs = lung_mask(hu, body)
    lung_slices = lungs.sum(axis=(0, 1))
    if lung_slices.max() == 0:
        raise MediastinumNotFound("no lungs found inside the body")
    check_whole_chest(lung_slices)
    extent = np.nonzero(lung_slices > CUT_OFF_SHARE * lung_slices.max())[0]
    centre_z = (int(extent.min()) + int(extent.max())) / 2.0
    levels = np.nonzero(lung_slices > 0.1 * lung_slices.max())[0]
    low, high = int(levels.min()), int(levels.max())
    quarter = (high - low) / 4.0
    middle = [z for z in levels if abs(z - (low + high) / 2.0) <= quarter]
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
        # Front to back: halfway between the front and the back of the lungs, so the box reaches
        # both the prevascular space behind the sternum and the paravertebral gutters.
        rows = np.nonzero(lungs[:, :, z].any(axis=0))[0]
        ys.append((float(rows.min()) + float(rows.max())) / 2.0)
    if not xs:
        raise MediastinumNotFound("no level with a lung on each side of the body")
    centre_x, centre_y = float(np.median(xs)), float(np.median(ys))
    return float(centre_x), float(centre_y), float(centre_z)
