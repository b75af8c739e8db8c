"""Drawing one lesion into a box of public anatomy from a class's released parameters.

The parameters fix where the class's lesions sit (one of the class's places, drawn by its weight,
and the side of the midline drawn from that place's share on each side), how large they are along
each axis, and what they are made of; the spread around them (how far one lesion strays from its
place's centre, how much its size varies, its outline's irregularity, its texture) is a public
design choice, the same for every class, so no private figure enters the picture beyond the
parameters. The lesion is an ellipsoid turned a little at random, its outline bent by a smooth
random field, filled with a smooth texture of the class's intensity and spread, with fat and
calcium where the class has them, and blended into the anatomy over a voxel so that its edge is
not a cut-out.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter
from scipy.spatial.transform import Rotation

from site_agent.generator.lesionstats.features import LesionParameters

CENTRE_SD = 0.06  # box coordinates: about 6 mm at the CPU box
SIZE_LOG_SD = 0.2
INTENSITY_SD = 0.03
TURN_RAD = 0.3
OUTLINE = 0.12  # relative bend of the outline
FAT_VALUE = -0.75  # window units (-110 HU)
CALCIUM_VALUE = 1.0


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> NDArray[np.float32]:
    field = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def paint_lesion(
    image: NDArray[np.float32],
    params: LesionParameters,
    *,
    spacing_mm: float,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """The box with the lesion painted in (window units, [-1, 1]) and the lesion's mask."""
    shape = image.shape
    extent = np.asarray(shape, dtype=np.float64) - 1.0
    weights = np.array([p.weight for p in params.places])
    place = params.places[rng.choice(len(params.places), p=weights / weights.sum())]
    side = 1.0 if rng.random() < place.positive_side_share else -1.0
    centre_box = np.asarray(place.centre) * np.array([side, 1.0, 1.0]) + rng.normal(0.0, CENTRE_SD, 3)
    centre_box = np.clip(centre_box, -0.95, 0.95)
    centre = (centre_box + 1.0) / 2.0 * extent
    axes = np.asarray(params.semi_axes_mm) * np.exp(rng.normal(0.0, SIZE_LOG_SD, 3)) / spacing_mm
    axes = np.maximum(axes, 1.0)
    turn = Rotation.from_euler("xyz", rng.uniform(-TURN_RAD, TURN_RAD, 3)).as_matrix()

    offsets = np.indices(shape, dtype=np.float32).reshape(3, -1).T - centre.astype(np.float32)
    radius = np.sqrt((((offsets @ turn.astype(np.float32)) / axes.astype(np.float32)) ** 2).sum(1))
    radius = radius.reshape(shape) * (1.0 + OUTLINE * _smooth_field(rng, shape, 2.0))
    inside = radius < 1.0
    nearest = tuple(int(c + 0.5) for c in centre)  # centre is inside the box, so >= 0
    inside[nearest] = True  # a lesion is never empty, however small its axes came out

    intensity = params.intensity + rng.normal(0.0, INTENSITY_SD)
    lesion = intensity + params.intensity_std * _smooth_field(rng, shape, 1.0)
    for share, value in ((params.fat_share, FAT_VALUE), (params.calcium_share, CALCIUM_VALUE)):
        if share > 0.01 and inside.sum() > 1:
            field = _smooth_field(rng, shape, 1.5)
            cut = np.quantile(field[inside], 1.0 - share)
            lesion = np.where(inside & (field >= cut), value, lesion)
    # Inside the mask the lesion dominates; just outside, it fades into what was there.
    alpha = np.clip((1.15 - radius) / 0.3, 0.0, 1.0)
    alpha[inside] = np.maximum(alpha[inside], 0.9)
    painted = image * (1.0 - alpha) + lesion * alpha
    return np.clip(painted, -1.0, 1.0).astype(np.float32), inside.astype(np.uint8)
