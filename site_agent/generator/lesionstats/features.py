"""What one patient's lesion tells the statistics, as a short bounded vector, and back again.

A patient's box and mask become `FEATURES` numbers, each in [-1, 1] by construction: the lesion's
centre (box coordinates; across the body as its distance from the midline and the side it lies
on, since a class whose lesions arise on either side, like neurogenic tumours beside the spine or
pericardial cysts at either cardiophrenic angle, would otherwise average to the midline), its
extent along each axis (the semi-axes of the solid ellipsoid with the same spread, on a log scale),
and, inside its rim, its mean and spread of intensity and the shares of its voxels that are fat and
calcium. With a leading 1 (the patient counts once) the vector's norm is at most sqrt(1 +
FEATURES), so scaling it by `max_grad_norm / BOUND` bounds every patient's contribution without
any clipping: the sensitivity of the per-class sums is known before any data is read.

`LesionParameters` is what a released, noisy table of sums decodes to (post-processing: it costs no
privacy), one row per class: a posterior mean that leans on a public textbook mass as far as the
noise demands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import binary_erosion

FEATURES = 11
BOUND = math.sqrt(1 + FEATURES)  # the largest norm of [1, features]
SIZE_RANGE_MM = (2.0, 100.0)  # semi-axes outside it are clamped (lesions span 1-20 cm)
FAT_BELOW = -0.5  # window units: -60 HU in the default window (-160, 240)
CALCIUM_ABOVE = 0.8  # +200 HU
INTERIOR_FEWEST = 8  # voxels: a smaller lesion is read whole
FEWEST_PATIENTS = 1.0  # a noisy count is never taken below one patient when dividing by it


def _log_size(semi_axis_mm: float) -> float:
    lo, hi = (math.log(v) for v in SIZE_RANGE_MM)
    return float(np.clip(2.0 * (math.log(max(semi_axis_mm, 1e-3)) - lo) / (hi - lo) - 1.0, -1.0, 1.0))


def _size_mm(feature: float) -> float:
    lo, hi = (math.log(v) for v in SIZE_RANGE_MM)
    return math.exp(lo + (float(np.clip(feature, -1, 1)) + 1.0) / 2.0 * (hi - lo))


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
    out[1] = 2.0 * abs(centre[0]) - 1.0  # distance from the box's midline (the box is centred on it)
    out[2] = float(np.sign(centre[0]))  # the side: +1 towards +x, -1 towards -x
    out[3:5] = centre[1:]
    # A solid ellipsoid of semi-axis a has variance a^2 / 5 along that axis; half a voxel at least.
    spread = np.sqrt(5.0 * where.var(axis=0) + 0.25) * spacing_mm
    out[5:8] = [_log_size(a) for a in spread]
    # Make-up from the lesion's interior: its rim shares voxels with the fat or lung around it,
    # which would read as fat and as texture the lesion does not have.
    interior = binary_erosion(mask)
    values = np.asarray(image, dtype=np.float64)[interior if interior.sum() >= INTERIOR_FEWEST else mask]
    out[8] = float(np.clip(values.mean(), -1.0, 1.0))
    out[9] = float(np.clip(4.0 * values.std() - 1.0, -1.0, 1.0))  # std 0 -> -1, 0.5 and above -> 1
    out[10] = 2.0 * float((values < FAT_BELOW).mean()) - 1.0
    out[11] = 2.0 * float((values > CALCIUM_ABOVE).mean()) - 1.0
    return out


@dataclass(frozen=True)
class LesionParameters:
    """One class's lesion, as the released statistics describe it."""

    patients: float  # the noisy count the means were divided by
    centre: tuple[float, float, float]  # box coordinates in [-1, 1]; the first is |x|, in [0, 1]
    positive_side_share: float  # the share of lesions on the +x side of the midline
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
    centre=(0.1, 0.3, 0.2),
    positive_side_share=0.5,
    semi_axes_mm=(20.0, 20.0, 20.0),
    intensity=0.0,
    intensity_std=0.05,
    fat_share=0.0,
    calcium_share=0.0,
)


def encode(params: LesionParameters) -> NDArray[np.float64]:
    """The features a lesion of exactly these parameters gives (the inverse of decoding a mean)."""
    lateral, y, z = params.centre
    return np.array(
        [
            2.0 * lateral - 1.0,
            2.0 * params.positive_side_share - 1.0,
            y,
            z,
            *(_log_size(a) for a in params.semi_axes_mm),
            params.intensity,
            4.0 * params.intensity_std - 1.0,
            2.0 * params.fat_share - 1.0,
            2.0 * params.calcium_share - 1.0,
        ]
    )


# What decoding assumes before it sees any sum, in feature units: a class's mean feature lies
# within about PRIOR_SD of the textbook mass's, and its patients spread about PATIENT_SD around it.
PRIOR_SD = 0.5
PATIENT_SD = 0.3


def decode(sums: NDArray[np.floating], noise_sd: float = 0.0) -> LesionParameters:
    """A class's parameters from its (noisy) sums of [1, features]: each mean feature is its
    posterior mean given the sum, the noisy count, the Gaussian noise's sd on every sum
    (`noise_sd`, public: noise multiplier times BOUND) and a Gaussian prior around PUBLIC_LESION.
    Without noise that is nearly the plain mean; under noise that drowns the sums it is the
    textbook mass, so a small epsilon never draws lesions worse than knowing nothing would. Then each is
    brought back into its valid range."""
    count = max(float(sums[0]), FEWEST_PATIENTS)
    prior = encode(PUBLIC_LESION)
    # sum ~ N(count * mean, count * PATIENT_SD^2 + noise_sd^2), mean ~ N(prior, PRIOR_SD^2).
    gain = count * PRIOR_SD**2 / (count**2 * PRIOR_SD**2 + count * PATIENT_SD**2 + noise_sd**2)
    mean = np.clip(prior + gain * (np.asarray(sums[1:], dtype=np.float64) - count * prior), -1.0, 1.0)
    return LesionParameters(
        patients=float(sums[0]),
        centre=(float((mean[0] + 1.0) / 2.0), float(mean[2]), float(mean[3])),
        positive_side_share=float((mean[1] + 1.0) / 2.0),
        semi_axes_mm=(_size_mm(mean[4]), _size_mm(mean[5]), _size_mm(mean[6])),
        intensity=float(mean[7]),
        intensity_std=float((mean[8] + 1.0) / 4.0),
        fat_share=float((mean[9] + 1.0) / 2.0),
        calcium_share=float((mean[10] + 1.0) / 2.0),
    )
