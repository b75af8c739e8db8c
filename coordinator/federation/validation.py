"""Every synthetic set a site sends is checked before anything is stored.

What is checked, against the round's request and the site's authenticated identity: the manifest's
round, site, classes, shape and spacing; the generator and the foundation it started from (the
round's, when the round names one); the privacy spend (finite, at most the epsilon asked, delta
within bounds, and the claimed epsilon recomputed from the card's own mechanism with the shared
accounting code, so a site cannot claim less than its noise, sample rate and steps cost); array
dtypes and shapes; image values finite and inside [-1, 1]; masks 0 or 1; the
number of samples of every class; and each volume's sha256 against the manifest.
"""

from __future__ import annotations

import math

import numpy as np

from coordinator.federation.errors import FederationError
from shared.federation.messages import SiteAnswer, array_sha256
from shared.privacy import DPRun, PrivacyMathError
from shared.schemas import RoundRequest, SyntheticSetManifest
from shared.synthetic_set import SetItem

EPSILON_SLACK = 1e-6  # calibration rounds below the asked epsilon; this only absorbs float noise
# A claim may sit this far (relative) below the recomputation: RDP answers the same number on any
# machine, PRV's numerical bound can move in its last digits between library versions.
CLAIM_TOLERANCE = 1e-3


class ReplyRejected(FederationError):
    """A site's reply failed validation; the message says which check, and nothing was stored."""


def validate_synthetic(answer: SiteAnswer, request: RoundRequest, site_id: str) -> list[SetItem]:
    manifest, volumes = answer.manifest, answer.volumes
    if manifest is None or volumes is None:
        raise ReplyRejected("the reply holds no synthetic set")
    _check_manifest(manifest, request, site_id)
    n = len(manifest.items)
    shape = (n, *request.volume_shape)
    images, masks, labels = volumes.images, volumes.masks, volumes.labels
    if images.dtype != np.float32 or images.shape != shape:
        raise ReplyRejected(f"images are {images.dtype} {images.shape}, expected float32 {shape}")
    if masks.dtype != np.uint8 or masks.shape != shape:
        raise ReplyRejected(f"masks are {masks.dtype} {masks.shape}, expected uint8 {shape}")
    if labels.dtype != np.int64 or labels.shape != (n,):
        raise ReplyRejected(f"labels are {labels.dtype} {labels.shape}, expected int64 ({n},)")
    if not np.isfinite(images).all() or images.min() < -1.0 or images.max() > 1.0:
        raise ReplyRejected("image values must be finite and inside [-1, 1]")
    if masks.max(initial=0) > 1:
        raise ReplyRejected("mask values must be 0 or 1")
    k = len(request.classes)
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= k:
        raise ReplyRejected(f"labels must index the {k} classes")
    counts = np.bincount(labels, minlength=k)
    if any(int(c) != request.per_class for c in counts):
        raise ReplyRejected(
            f"samples per class are {counts.tolist()}, the round asked {request.per_class} each"
        )
    items = []
    for i, item in enumerate(manifest.items):
        if item.label != request.classes[int(labels[i])]:
            raise ReplyRejected(f"manifest item {i} says {item.label!r}, its label array says otherwise")
        if array_sha256(images[i]) != item.image_sha256 or array_sha256(masks[i]) != item.mask_sha256:
            raise ReplyRejected(f"volume {i} does not match its sha256 in the manifest")
        items.append(
            SetItem(name=f"{site_id}-{i:05d}", image=images[i], mask=masks[i], label=item.label, site=site_id)
        )
    return items


def _check_manifest(manifest: SyntheticSetManifest, request: RoundRequest, site_id: str) -> None:
    if manifest.round_id != request.round_id:
        raise ReplyRejected(f"the set is for round {manifest.round_id!r}, not {request.round_id!r}")
    if manifest.site_id != site_id:
        raise ReplyRejected(f"the set names site {manifest.site_id!r}, but it came from {site_id!r}")
    if manifest.classes != request.classes:
        raise ReplyRejected("the set's classes are not the round's")
    if tuple(manifest.volume_shape) != tuple(request.volume_shape):
        raise ReplyRejected(
            f"the set's volumes are {manifest.volume_shape}, the round asked {request.volume_shape}"
        )
    if tuple(manifest.spacing_mm) != tuple(request.spacing_mm):
        raise ReplyRejected(
            f"the set's spacing is {manifest.spacing_mm}, the round asked {request.spacing_mm}"
        )
    generator = manifest.generator
    if generator.backend != request.generator:
        raise ReplyRejected(
            f"the set was made by {generator.backend!r}, the round asked {request.generator!r}"
        )
    if request.foundation_sha256 is not None and generator.foundation_sha256 != request.foundation_sha256:
        raise ReplyRejected(
            f"the set started from the foundation {str(generator.foundation_sha256)[:12]}, not the round's "
            f"{request.foundation_id} ({request.foundation_sha256[:12]})"
        )
    spend = manifest.privacy
    if not math.isfinite(spend.epsilon) or spend.noise_multiplier <= 0:
        raise ReplyRejected("the set was not made with differential privacy")
    if spend.epsilon > request.epsilon + EPSILON_SLACK:
        raise ReplyRejected(
            f"the set cost epsilon {spend.epsilon:.3f}, more than the {request.epsilon:g} asked"
        )
    if request.delta is not None and spend.delta > request.delta:
        raise ReplyRejected(f"the set's delta {spend.delta:g} is above the {request.delta:g} asked")
    try:
        recomputed = DPRun.of_spend(spend).planned_epsilon
    except PrivacyMathError as exc:
        raise ReplyRejected(f"site {site_id}'s privacy card cannot be recomputed: {exc}") from exc
    if spend.epsilon < recomputed * (1 - CLAIM_TOLERANCE):
        raise ReplyRejected(
            f"site {site_id} claims epsilon {spend.epsilon:.3f}, but its card's mechanism (noise "
            f"{spend.noise_multiplier:g}, sample rate {spend.sample_rate:g}, {spend.steps} steps, delta "
            f"{spend.delta:g}, {spend.accountant}) costs epsilon {recomputed:.3f}"
        )
