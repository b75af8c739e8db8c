"""A privacy audit in one training run (Steinke, Nasr and Jagielski, NeurIPS 2023).

m canaries are made; each is put into the training set with probability 1/2, independently, and
the generator is trained once. The auditor scores every canary from what leaves the site (the
synthetic samples only: a black-box audit), guesses "in" for the k highest scores and "out" for
the k lowest, and counts the correct guesses v out of r = 2k. Under (epsilon, delta)-DP the number
of correct guesses is at most as large as Binomial(r, e^eps / (1 + e^eps)) plus a delta term
(their Theorem 3.1), so an epsilon whose p-value for v falls below 5% is ruled out: the largest
such epsilon is an empirical lower bound, to be read next to the accounted (upper) bound. With r
guesses the bound can never exceed the epsilon at which even r correct guesses are unsurprising.

Canaries here are phantom patients of the hospital's profile, each marked with a bright cube at
its own random place: a generator that memorises a canary reproduces its mark there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import binom

CONFIDENCE = 0.95
MARK_VOXELS = 6


def p_value(r: int, v: int, epsilon: float, delta: float, m: int) -> float:
    """P[at least v of r guesses right] for a mechanism that is (epsilon, delta)-DP, m canaries."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(binom.sf(v - 1, r, q))
    # The delta term of Theorem 3.1: the largest average of the binomial mass just below v.
    alpha, mass = 0.0, 0.0
    for i in range(1, v + 1):
        mass += float(binom.pmf(v - i, r, q))
        alpha = max(alpha, mass / i)
    return min(1.0, tail + 2 * m * delta * alpha)


def epsilon_lower_bound(r: int, v: int, delta: float, m: int, confidence: float = CONFIDENCE) -> float:
    """The largest epsilon that r guesses with v right rule out at this confidence (0: none)."""
    level = 1.0 - confidence
    if p_value(r, v, 0.0, delta, m) >= level:
        return 0.0
    low, high = 0.0, 1.0
    while p_value(r, v, high, delta, m) < level:
        high *= 2
        if high > 1e3:
            return math.inf
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if p_value(r, v, mid, delta, m) < level else (low, mid)
    return low


@dataclass(frozen=True)
class Canaries:
    images: NDArray[np.float32]  # (m, D, D, D): the marked patients
    masks: NDArray[np.uint8]
    labels: NDArray[np.int64]
    corners: NDArray[np.int64]  # (m, 3): where each mark starts
    included: NDArray[np.bool_]  # drawn once, before training


def make_canaries(
    images: NDArray[np.float32],
    masks: NDArray[np.uint8],
    labels: NDArray[np.int64],
    *,
    seed: int,
) -> Canaries:
    rng = np.random.default_rng(seed)
    cube = images.shape[1]
    corners = rng.integers(2, cube - MARK_VOXELS - 2, size=(len(images), 3))
    marked = images.copy()
    for n, (x, y, z) in enumerate(corners):
        marked[n, x : x + MARK_VOXELS, y : y + MARK_VOXELS, z : z + MARK_VOXELS] = 1.0
    included = rng.random(len(images)) < 0.5
    return Canaries(marked, masks, labels, corners, included)


def canary_scores(canaries: Canaries, samples: NDArray[np.float32]) -> NDArray[np.float64]:
    """How strongly some synthetic sample reproduces each canary's mark: the brightest sample in
    the mark's place, less the median sample there (what that place looks like anyway)."""
    scores = []
    for x, y, z in canaries.corners:
        region = samples[:, x : x + MARK_VOXELS, y : y + MARK_VOXELS, z : z + MARK_VOXELS].reshape(
            len(samples), -1
        )
        brightness = region.mean(axis=1)
        scores.append(float(brightness.max() - np.median(brightness)))
    return np.asarray(scores)


def audit_guesses(scores: NDArray[np.float64], included: NDArray[np.bool_], k: int) -> tuple[int, int]:
    """Guess "in" for the k highest scores and "out" for the k lowest; (guesses, correct)."""
    if 2 * k > len(scores):
        raise ValueError(f"{2 * k} guesses from {len(scores)} canaries")
    order = np.argsort(scores, kind="stable")
    correct = int(included[order[-k:]].sum() + (~included[order[:k]]).sum())
    return 2 * k, correct
