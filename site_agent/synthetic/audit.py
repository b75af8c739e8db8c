"""The memorisation audit: does any synthetic volume sit closer to a training patient than a fresh
patient does?

Feature space: each volume is average-pooled to voxels of about 8 mm and compared by root-mean-square
difference. Pooling drops the voxel noise (which would make every pair of volumes almost equally far
apart) and keeps what a copied patient would carry over: body outline, organs and lesion where
they lie. The space is fixed and data-independent: no network trained on the private data.

Reference: for each held-out real patient, the distance to its nearest training patient. That is
how near a new patient of this hospital comes by chance. A sample is "close" when it is nearer
its nearest training patient than the `quantile` of those distances, and a "near copy" when it is
nearer than half the closest of them. With fewer than five held-out patients the leave-one-out
distances among training patients stand in.

A hospital has few held-out patients, so the threshold is an order statistic of a handful of
distances: with 5 of them the 5% quantile is the closest one, and a sample that is exactly as
fresh as a new patient falls under it with probability 1/6, not 5%. Comparing the close fraction
with `max_close_fraction` alone then blocked honest sets at random (the demo's 24 samples against
5 references: 21% close, blocked, in about one run in five). So the audit blocks only when the
close fraction is both above `max_close_fraction` and more than chance can explain: under the
hypothesis that samples are as far from the training patients as fresh patients are, the number
of close samples follows a beta-binomial law (the threshold's own randomness included), and the
audit blocks when that count has a probability under `ALPHA`.

Under DP the audit never edits the set: dropping the samples that sit near a patient would make
what leaves depend on that patient, outside the accounted mechanism. It can only block the whole
export for the hospital's review. The one bit "refused" is all that leaves.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.stats import betabinom

from site_agent.config import SiteAudit

FEATURE_MM = 8.0
MIN_HOLDOUT = 5
# How surprising the close count must be, were the samples as fresh as new patients, to block:
# one honest set in a hundred is blocked for review at most.
ALPHA = 0.01


@dataclass(frozen=True)
class AuditResult:
    passed: bool
    reason: str
    samples: int
    reference: str  # "holdout" or "train-leave-one-out"
    reference_patients: int
    close_threshold: float
    close_fraction: float
    chance_fraction: float  # the close fraction expected of samples as fresh as new patients
    p_value: float  # the chance of this many close samples or more, were they that fresh
    near_copies: int
    nearest_min: float
    nearest_median: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def features(volumes: NDArray[np.float32], spacing_mm: float) -> torch.Tensor:
    factor = max(1, round(FEATURE_MM / spacing_mm))
    x = torch.as_tensor(volumes, dtype=torch.float32).unsqueeze(1)
    pooled = torch.nn.functional.avg_pool3d(x, factor) if factor > 1 else x
    return pooled.flatten(1)


def _nearest(a: torch.Tensor, b: torch.Tensor, *, exclude_self: bool = False) -> torch.Tensor:
    d = torch.cdist(a, b) / np.sqrt(a.shape[1])  # RMS difference per pooled voxel
    if exclude_self:
        d.fill_diagonal_(float("inf"))
    return d.min(dim=1).values


def audit(
    samples: NDArray[np.float32],
    training: NDArray[np.float32],
    holdout: NDArray[np.float32],
    *,
    spacing_mm: float,
    rules: SiteAudit,
) -> AuditResult:
    s, t = features(samples, spacing_mm), features(training, spacing_mm)
    if len(holdout) >= MIN_HOLDOUT:
        reference, kind = _nearest(features(holdout, spacing_mm), t), "holdout"
    else:
        reference, kind = _nearest(t, t, exclude_self=True), "train-leave-one-out"
    # The k-th closest reference distance: a fresh patient falls under it with probability
    # k / (n + 1), whatever the distribution of distances, so the rule needs no model of them.
    n = len(reference)
    k = max(1, math.ceil(rules.quantile * n))
    threshold = float(torch.sort(reference).values[k - 1])
    copy_threshold = 0.5 * float(reference.min())
    nearest = _nearest(s, t)
    close_count = int((nearest < threshold).sum())
    close = close_count / len(samples)
    # P(close count >= observed) when each sample falls under the threshold with probability
    # F(threshold), and F(k-th of n order statistic) ~ Beta(k, n - k + 1).
    p_value = float(betabinom(len(samples), k, n - k + 1).sf(close_count - 1))
    copies = int((nearest < copy_threshold).sum())
    if copies:
        passed, reason = False, f"{copies} samples are near copies of a training patient"
    elif close > rules.max_close_fraction and p_value < ALPHA:
        passed, reason = (
            False,
            (
                f"{close:.0%} of samples sit closer to a training patient than {rules.quantile:.0%} of fresh "
                f"patients do (allowed: {rules.max_close_fraction:.0%}; samples as fresh as new "
                f"patients would do so {k / (n + 1):.0%} of the time, and this many or more with "
                f"probability {p_value:.2g})"
            ),
        )
    else:
        passed, reason = True, "no sample is closer to the training patients than fresh patients are"
    return AuditResult(
        passed=passed,
        reason=reason,
        samples=len(samples),
        reference=kind,
        reference_patients=len(reference),
        close_threshold=round(threshold, 5),
        close_fraction=round(close, 4),
        chance_fraction=round(k / (n + 1), 4),
        p_value=float(f"{p_value:.3g}"),
        near_copies=copies,
        nearest_min=round(float(nearest.min()), 5),
        nearest_median=round(float(nearest.median()), 5),
    )
