"""What one patient's lesion tells the statistics, as a short bounded vector, and back again.

A patient's box and mask become a vector of numbers, each in [-1, 1] by construction:

- where the lesion sits, as a histogram over `PLACES` coarse places: a 3 x 3 grid over the box's
  front-to-back (y) and foot-to-head (z) axes. The patient fills only its own place's block, with a
  1 (it counts there) and its centre: across the body as its distance from the midline and the side
  it lies on (a class whose lesions arise on either side, like neurogenic tumours beside the spine,
  would otherwise average onto the midline), then y and z. One mean place per class put a class
  whose lesions arise in several places (benign cysts: pericardial at the cardiophrenic angle,
  bronchogenic under the carina, thymic in front) at none of them, beside the heart; per-place sums
  keep each of those places;
- its extent along each axis (the semi-axes of the solid ellipsoid with the same spread, on a log
  scale);
- inside its rim, its mean and spread of intensity and the shares of its voxels that are fat and
  calcium.

With a leading 1 (the patient counts once) the vector's norm is at most `BOUND` = sqrt(1 + 5 + 7):
only one place block is ever filled, so the many places cost almost nothing in sensitivity, and
scaling the vector by `max_grad_norm / BOUND` bounds every patient's contribution without any
clipping: the sensitivity of the per-class sums is known before any data is read.

`LesionParameters` is what a released, noisy table of sums decodes to (post-processing: it costs no
privacy), one row per class: each figure a posterior mean that leans on a public textbook mass as
far as the noise demands, and the places whose noisy counts stand out of the noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import binary_erosion

PLACE_BINS = 3  # per axis (y, z): thirds of the box
PLACES = PLACE_BINS * PLACE_BINS
PLACE_BLOCK = 5  # the count, then distance from the midline, side, y, z
SHAPE_AND_MAKEUP = 7  # three log semi-axes, then intensity, its spread, fat share, calcium share
FEATURES = PLACES * PLACE_BLOCK + SHAPE_AND_MAKEUP
BOUND = math.sqrt(1 + PLACE_BLOCK + SHAPE_AND_MAKEUP)  # the largest norm of [1, features]
SIZE_RANGE_MM = (2.0, 100.0)  # semi-axes outside it are clamped (lesions span 1-20 cm)
FAT_BELOW = -0.5  # window units: -60 HU in the default window (-160, 240)
CALCIUM_ABOVE = 0.8  # +200 HU
INTERIOR_FEWEST = 8  # voxels: a smaller lesion is read whole
FEWEST_PATIENTS = 1.0  # a noisy count is never taken below one patient when dividing by it
_REST = 1 + PLACES * PLACE_BLOCK  # where the semi-axes start in [1, features]


def _log_size(semi_axis_mm: float) -> float:
    lo, hi = (math.log(v) for v in SIZE_RANGE_MM)
    return float(np.clip(2.0 * (math.log(max(semi_axis_mm, 1e-3)) - lo) / (hi - lo) - 1.0, -1.0, 1.0))


def _size_mm(feature: float) -> float:
    lo, hi = (math.log(v) for v in SIZE_RANGE_MM)
    return math.exp(lo + (float(np.clip(feature, -1, 1)) + 1.0) / 2.0 * (hi - lo))


def place_index(y: float, z: float) -> int:
    """The coarse place of a centre at box coordinates y, z in [-1, 1]."""
    row, column = (min(int((v + 1.0) / 2.0 * PLACE_BINS), PLACE_BINS - 1) for v in (y, z))
    return max(row, 0) * PLACE_BINS + max(column, 0)


def place_bounds(index: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """The (low, high) box coordinates of a place along y and along z."""
    width = 2.0 / PLACE_BINS
    row, column = divmod(index, PLACE_BINS)
    y_low, z_low = -1.0 + row * width, -1.0 + column * width
    return (y_low, y_low + width), (z_low, z_low + width)


def lesion_features(
    image: NDArray[np.floating], mask: NDArray[np.bool_], spacing_mm: float
) -> NDArray[np.float64]:
    """[1, features] of one box: zeros after the 1 when the box has no lesion (a normal patient)."""
    out = np.zeros(1 + FEATURES)
    out[0] = 1.0
    where = np.argwhere(mask)
    if len(where) == 0:
        return out
    shape = np.asarray(mask.shape, dtype=np.float64)
    centre = np.clip(2.0 * where.mean(axis=0) / np.maximum(shape - 1, 1) - 1.0, -1.0, 1.0)
    block = 1 + place_index(centre[1], centre[2]) * PLACE_BLOCK
    out[block] = 1.0
    out[block + 1] = 2.0 * abs(centre[0]) - 1.0  # distance from the box's midline (the box is centred on it)
    out[block + 2] = float(np.sign(centre[0]))  # the side: +1 towards +x, -1 towards -x
    out[block + 3 : block + 5] = centre[1:]
    # A solid ellipsoid of semi-axis a has variance a^2 / 5 along that axis; half a voxel at least.
    spread = np.sqrt(5.0 * where.var(axis=0) + 0.25) * spacing_mm
    out[_REST : _REST + 3] = [_log_size(a) for a in spread]
    # Make-up from the lesion's interior: its rim shares voxels with the fat or lung around it,
    # which would read as fat and as texture the lesion does not have.
    interior = binary_erosion(mask)
    values = np.asarray(image, dtype=np.float64)[interior if interior.sum() >= INTERIOR_FEWEST else mask]
    out[_REST + 3] = float(np.clip(values.mean(), -1.0, 1.0))
    out[_REST + 4] = float(np.clip(4.0 * values.std() - 1.0, -1.0, 1.0))  # std 0 -> -1, 0.5 and above -> 1
    out[_REST + 5] = 2.0 * float((values < FAT_BELOW).mean()) - 1.0
    out[_REST + 6] = 2.0 * float((values > CALCIUM_ABOVE).mean()) - 1.0
    return out


@dataclass(frozen=True)
class Place:
    """One place where a class's lesions arise."""

    weight: float  # the share of the class's lesions drawn here
    centre: tuple[float, float, float]  # box coordinates in [-1, 1]; the first is |x|, in [0, 1]
    positive_side_share: float  # the share of lesions here on the +x side of the midline


@dataclass(frozen=True)
class LesionParameters:
    """One class's lesion, as the released statistics describe it."""

    patients: float  # the noisy count the means were divided by
    places: tuple[Place, ...]  # weights summing to 1
    semi_axes_mm: tuple[float, float, float]
    intensity: float  # window units
    intensity_std: float
    fat_share: float
    calcium_share: float


# A generic mediastinal mass as any textbook draws it, with no hospital's data behind it: soft
# tissue, 4 cm across, in the anterior mediastinum, where most mediastinal masses arise. What a
# class's lesion is when nothing private is known (bench.utility's foundation-only control).
PUBLIC_LESION = LesionParameters(
    patients=0.0,
    places=(Place(1.0, (0.1, 0.3, 0.2), 0.5),),
    semi_axes_mm=(20.0, 20.0, 20.0),
    intensity=0.0,
    intensity_std=0.05,
    fat_share=0.0,
    calcium_share=0.0,
)


def _shape_and_makeup(params: LesionParameters) -> NDArray[np.float64]:
    """The features after the places that a lesion of exactly these parameters gives."""
    return np.array(
        [
            *(_log_size(a) for a in params.semi_axes_mm),
            params.intensity,
            4.0 * params.intensity_std - 1.0,
            2.0 * params.fat_share - 1.0,
            2.0 * params.calcium_share - 1.0,
        ]
    )


# What decoding assumes before it sees any sum, in feature units: a class's mean feature lies
# within about PRIOR_SD of the textbook mass's, and its patients spread about PATIENT_SD around it;
# inside one place, the mean y and z lie within about PLACE_SD of the place's middle, and its
# patients spread about PLACE_PATIENT_SD around them.
PRIOR_SD = 0.5
PATIENT_SD = 0.3
PLACE_SD = 0.2
PLACE_PATIENT_SD = 0.1
# A place is drawn from only where its noisy count stands this many noise sds above zero: a place
# where no patient's lesion lies has a count of pure noise, positive half the time, and with nine
# places that noise would scatter lesions over the whole box.
PLACE_THRESHOLD_SD = 1.0


def _posterior(
    sums: NDArray[np.float64],
    count: float,
    prior: NDArray[np.float64],
    prior_sd: NDArray[np.float64],
    patient_sd: NDArray[np.float64],
    noise_sd: float,
) -> NDArray[np.float64]:
    """The posterior mean of a feature mean given its noisy sum over `count` patients:
    sum ~ N(count * mean, count * patient_sd^2 + noise_sd^2), mean ~ N(prior, prior_sd^2)."""
    gain = count * prior_sd**2 / (count**2 * prior_sd**2 + count * patient_sd**2 + noise_sd**2)
    return np.clip(prior + gain * (sums - count * prior), -1.0, 1.0)


def _places(sums: NDArray[np.float64], noise_sd: float) -> tuple[Place, ...]:
    (public,) = PUBLIC_LESION.places
    counts = sums[0 : PLACES * PLACE_BLOCK : PLACE_BLOCK]
    weights = np.maximum(counts - PLACE_THRESHOLD_SD * noise_sd, 0.0)
    if weights.sum() <= 0.0:  # nothing stands out of the noise: the textbook's place
        return PUBLIC_LESION.places
    places = []
    for index in np.flatnonzero(weights):
        (y_low, y_high), (z_low, z_high) = place_bounds(int(index))
        prior = np.array([2.0 * public.centre[0] - 1.0, 0.0, (y_low + y_high) / 2, (z_low + z_high) / 2])
        prior_sd = np.array([PRIOR_SD, PRIOR_SD, PLACE_SD, PLACE_SD])
        patient_sd = np.array([PATIENT_SD, PATIENT_SD, PLACE_PATIENT_SD, PLACE_PATIENT_SD])
        block = sums[index * PLACE_BLOCK + 1 : (index + 1) * PLACE_BLOCK]
        count = max(float(counts[index]), FEWEST_PATIENTS)
        mean = _posterior(block, count, prior, prior_sd, patient_sd, noise_sd)
        places.append(
            Place(
                weight=float(weights[index] / weights.sum()),
                centre=(
                    float((mean[0] + 1.0) / 2.0),
                    float(np.clip(mean[2], y_low, y_high)),  # a place's lesions stay in it
                    float(np.clip(mean[3], z_low, z_high)),
                ),
                positive_side_share=float((mean[1] + 1.0) / 2.0),
            )
        )
    return tuple(places)


def decode(sums: NDArray[np.floating], noise_sd: float = 0.0) -> LesionParameters:
    """A class's parameters from its (noisy) sums of [1, features], given the Gaussian noise's sd on
    every sum (`noise_sd`, public: noise multiplier times BOUND): each mean is its posterior mean
    under a Gaussian prior around PUBLIC_LESION. Without noise that is nearly the plain mean; under
    noise that drowns the sums it is the textbook mass, so a small epsilon never draws lesions worse
    than knowing nothing would. Then each is brought back into its valid range."""
    values: NDArray[np.float64] = np.asarray(sums, dtype=np.float64)
    count = max(float(values[0]), FEWEST_PATIENTS)
    prior = _shape_and_makeup(PUBLIC_LESION)
    spread = np.full(len(prior), PRIOR_SD), np.full(len(prior), PATIENT_SD)
    mean = _posterior(values[_REST:], count, prior, *spread, noise_sd)
    return LesionParameters(
        patients=float(values[0]),
        places=_places(values[1:_REST], noise_sd),
        semi_axes_mm=(_size_mm(mean[0]), _size_mm(mean[1]), _size_mm(mean[2])),
        intensity=float(mean[3]),
        intensity_std=float((mean[4] + 1.0) / 4.0),
        fat_share=float((mean[5] + 1.0) / 2.0),
        calcium_share=float((mean[6] + 1.0) / 2.0),
    )
