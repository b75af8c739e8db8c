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

Under DP the audit never edits the set: dropping the samples that sit near a patient would make
what leaves depend on that patient, outside the accounted mechanism. It can only block the whole
export for the hospital's review. The one bit "refused" is all that leaves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from site_agent.config import SiteAudit

FEATURE_MM = 8.0
MIN_HOLDOUT = 5


@dataclass(frozen=True)
class AuditResult:
    passed: bool
    reason: str
    samples: int
    reference: str  # "holdout" or "train-leave-one-out"
    reference_patients: int
    close_threshold: float
    close_fraction: float
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
    threshold = float(torch.quantile(reference, rules.quantile))
    copy_threshold = 0.5 * float(reference.min())
    nearest = _nearest(s, t)
    close = float((nearest < threshold).float().mean())
    copies = int((nearest < copy_threshold).sum())
    if copies:
        passed, reason = False, f"{copies} samples are near copies of a training patient"
    elif close > rules.max_close_fraction:
        passed, reason = (
            False,
            (
                f"{close:.0%} of samples sit closer to a training patient than {rules.quantile:.0%} of fresh "
                f"patients do (allowed: {rules.max_close_fraction:.0%})"
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
        near_copies=copies,
        nearest_min=round(float(nearest.min()), 5),
        nearest_median=round(float(nearest.median()), 5),
    )
