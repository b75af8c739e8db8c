"""Scoring a diagnostic model on this site's held-out real cases: only metrics come out.

The federation calls `evaluate_on_holdout` with a model it received; `site-agent evaluate` runs the
same for hospital IT. The reply holds counts and rates over the held-out cases, each with its case
count and bootstrap interval (or the reason it could not be estimated), never a voxel, a case id or
a per-case score.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from shared.crop_box import box_text
from shared.devices import choose_device
from shared.diagnosis.bundle import DiagnosticModel, load_model
from shared.diagnosis.metrics import (
    MIN_CASES,
    MIN_CLASS_CASES,
    Estimate,
    auc,
    balanced_accuracy,
    confusion,
    dice,
    estimate,
    macro_auc,
)
from shared.diagnosis.model_files import ModelError, model_sha256
from shared.schemas import ClassMetrics, Figure, SiteMetricsReply
from site_agent.config import SiteSettings
from site_agent.errors import SiteRefusal
from site_agent.ingest.store import CaseStore


class EvaluationError(SiteRefusal):
    """The site cannot score this model: no labelled held-out cases, or a model for other data."""

    reason = "not_ready"
    public_detail = "this site has no labelled held-out cases to score a model on"


def evaluate_on_holdout(
    settings: SiteSettings, model_dir: Path, *, round_id: str = "local"
) -> SiteMetricsReply:
    device = choose_device(settings.compute.device)
    model = load_model(model_dir, device=device)
    if model.classes != settings.classes:
        raise ModelError(
            f"the model's classes {list(model.classes)} are not this site's {list(settings.classes)}"
        )
    if model.box != settings.preprocessing.box:
        raise ModelError(
            f"the model takes {box_text(model.box)} boxes; this site stores "
            f"{box_text(settings.preprocessing.box)}"
        )
    with CaseStore(settings.paths.store) as store:
        held_out = [c for c in store.all_latest() if c.split == "holdout" and c.label is not None]
        if not held_out:
            raise EvaluationError("this site has no labelled held-out cases to score a model on")
        loaded = [store.load(c.case_id, c.version) for c in held_out]
    images = np.stack([image for _, image, _ in loaded])
    truth = np.array([settings.classes.index(str(c.label)) for c in held_out], dtype=np.int64)
    probabilities = model.probabilities(images, device=device)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion(truth, predicted, len(settings.classes))
    n = len(held_out)
    masks = _lesion_masks(model, images, [mask for _, _, mask in loaded], device)

    def figure(statistic: Statistic, cases: int, minimum: int, what: str) -> Figure:
        return _figure(estimate(statistic, n, cases=cases, minimum=minimum, what=what))

    def for_class(k: int, name: str) -> ClassMetrics:
        positive = int((truth == k).sum())

        def class_auc(i: NDArray[np.int64]) -> float | None:
            return auc(probabilities[i, k], truth[i] == k)

        def sensitivity(i: NDArray[np.int64]) -> float | None:
            return _rate(predicted[i][truth[i] == k] == k)

        def specificity(i: NDArray[np.int64]) -> float | None:
            return _rate(predicted[i][truth[i] != k] != k)

        return ClassMetrics(
            cases=positive,
            # An AUC needs cases of the class and of the others: the smaller side counts.
            auc=figure(
                class_auc,
                min(positive, n - positive),
                MIN_CLASS_CASES,
                f"cases on the smaller side of {name}",
            ),
            sensitivity=figure(sensitivity, positive, MIN_CLASS_CASES, f"{name} cases"),
            specificity=figure(specificity, n - positive, MIN_CLASS_CASES, f"cases other than {name}"),
            dice=_class_dice(masks, truth, k, name) if masks is not None else None,
        )

    per_class = {name: for_class(k, name) for k, name in enumerate(settings.classes)}
    return SiteMetricsReply(
        round_id=round_id,
        site_id=settings.site_id,
        model_sha256=model_sha256(model_dir),
        classes=settings.classes,
        cases=n,
        accuracy=figure(lambda i: _rate(predicted[i] == truth[i]), n, MIN_CASES, "held-out cases"),
        balanced_accuracy=figure(
            lambda i: balanced_accuracy(confusion(truth[i], predicted[i], len(settings.classes))),
            n,
            MIN_CASES,
            "held-out cases",
        ),
        macro_auc=figure(lambda i: macro_auc(probabilities[i], truth[i]), n, MIN_CASES, "held-out cases"),
        per_class=per_class,
        confusion=tuple(tuple(int(v) for v in row) for row in matrix),
    )


Statistic = Callable[[NDArray[np.int64]], float | None]


def _rate(hits: NDArray[np.bool_]) -> float | None:
    return float(hits.mean()) if len(hits) else None


def _lesion_masks(
    model: DiagnosticModel,
    images: NDArray[np.float32],
    masks: list[NDArray[np.uint8] | None],
    device: torch.device,
) -> list[tuple[NDArray[np.bool_], NDArray[np.bool_]]] | None:
    """(predicted, true) lesion masks of the held-out cases, when the model segments and every case
    has its mask; otherwise Dice is not scored."""
    if model.segmenter is None or any(m is None for m in masks):
        return None
    predicted = model.lesion_masks(images, device=device)
    return [(p, np.asarray(t) > 0) for p, t in zip(predicted, masks, strict=True)]


def _class_dice(
    masks: list[tuple[NDArray[np.bool_], NDArray[np.bool_]]], truth: NDArray[np.int64], k: int, name: str
) -> Figure | None:
    """Mean lesion Dice over the class's cases that have a lesion (`normal` has none: no Dice)."""
    members = [m for m in np.flatnonzero(truth == k) if masks[m][1].any()]
    if not members:
        return None
    values = np.array([dice(*masks[m]) for m in members], dtype=np.float64)
    found = estimate(
        lambda i: float(values[i].mean()),
        len(values),
        cases=len(values),
        minimum=MIN_CLASS_CASES,
        what=f"{name} cases with a lesion",
    )
    return _figure(found)


def _figure(found: Estimate) -> Figure:
    return Figure(
        value=found.value, ci95_low=found.low, ci95_high=found.high, cases=found.cases or 0, note=found.note
    )


__all__ = ["EvaluationError", "evaluate_on_holdout"]
