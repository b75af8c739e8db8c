"""Scoring a diagnostic model on this site's held-out real cases: only metrics come out.

The federation calls `evaluate_on_holdout` with a model it received; `site-agent evaluate` runs the
same for hospital IT. The reply holds counts and rates over the held-out cases, never a voxel, a
case id or a per-case score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.devices import choose_device
from shared.diagnosis.bundle import ModelError, load_model, model_sha256
from shared.diagnosis.metrics import auc, balanced_accuracy, confusion, macro_auc
from shared.errors import FedsynthError
from shared.schemas import ClassMetrics, SiteMetricsReply
from site_agent.config import SiteSettings
from site_agent.ingest.store import CaseStore


class EvaluationError(FedsynthError):
    """The site cannot score this model: no labelled held-out cases, or a model for other data."""


def evaluate_on_holdout(
    settings: SiteSettings, model_dir: Path, *, round_id: str = "local"
) -> SiteMetricsReply:
    device = choose_device(settings.compute.device)
    model = load_model(model_dir, device=device)
    if model.classes != settings.classes:
        raise ModelError(
            f"the model's classes {list(model.classes)} are not this site's {list(settings.classes)}"
        )
    if model.cube != settings.preprocessing.cube:
        raise ModelError(
            f"the model takes {model.cube}^3 cubes; this site stores {settings.preprocessing.cube}^3"
        )
    with CaseStore(settings.paths.store) as store:
        held_out = [c for c in store.all_latest() if c.split == "holdout" and c.label is not None]
        if not held_out:
            raise EvaluationError("this site has no labelled held-out cases to score a model on")
        images = np.stack([store.load(c.case_id, c.version)[1] for c in held_out])
    truth = np.array([settings.classes.index(str(c.label)) for c in held_out], dtype=np.int64)
    probabilities = model.probabilities(images, device=device)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion(truth, predicted, len(settings.classes))

    per_class = {}
    for k, name in enumerate(settings.classes):
        positive, negative = truth == k, truth != k
        per_class[name] = ClassMetrics(
            auc=auc(probabilities[:, k], positive),
            sensitivity=float((predicted[positive] == k).mean()) if positive.any() else None,
            specificity=float((predicted[negative] != k).mean()) if negative.any() else None,
        )
    return SiteMetricsReply(
        round_id=round_id,
        site_id=settings.site_id,
        model_sha256=model_sha256(model_dir),
        classes=settings.classes,
        cases=len(held_out),
        accuracy=float((predicted == truth).mean()),
        balanced_accuracy=balanced_accuracy(matrix),
        macro_auc=macro_auc(probabilities, truth),
        per_class=per_class,
        confusion=tuple(tuple(int(v) for v in row) for row in matrix),
    )


__all__ = ["EvaluationError", "evaluate_on_holdout"]
