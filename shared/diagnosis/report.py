"""The evaluation report of a diagnostic model on one labelled set, every figure with its 95% interval."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.diagnosis.metrics import Estimate, auc, balanced_accuracy, bootstrap, confusion, dice, macro_auc


def evaluation_report(
    probabilities: NDArray[np.float64],
    truth: NDArray[np.int64],
    classes: tuple[str, ...],
    *,
    predicted_masks: NDArray[np.bool_] | None = None,
    true_masks: NDArray[np.bool_] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    n, k = probabilities.shape
    predicted = probabilities.argmax(axis=1)

    def per_class(name: str, index: int) -> dict[str, Any]:
        def sens(idx: NDArray[np.int64]) -> float | None:
            pos = truth[idx] == index
            return float((predicted[idx][pos] == index).mean()) if pos.any() else None

        def spec(idx: NDArray[np.int64]) -> float | None:
            neg = truth[idx] != index
            return float((predicted[idx][neg] != index).mean()) if neg.any() else None

        row: dict[str, Any] = {
            "cases": int((truth == index).sum()),
            "auc": bootstrap(
                lambda i: auc(probabilities[i, index], truth[i] == index), n, seed=seed
            ).as_dict(),
            "sensitivity": bootstrap(sens, n, seed=seed).as_dict(),
            "specificity": bootstrap(spec, n, seed=seed).as_dict(),
        }
        if predicted_masks is not None and true_masks is not None:
            members = np.flatnonzero(truth == index)
            scores = [dice(predicted_masks[m], true_masks[m]) for m in members]
            values = np.array([s for s in scores if s is not None], dtype=np.float64)
            row["dice"] = (
                bootstrap(lambda i: float(values[i].mean()), len(values), seed=seed).as_dict()
                if len(values)
                else Estimate(None, None, None).as_dict()
            )
        return row

    report: dict[str, Any] = {
        "cases": n,
        "classes": list(classes),
        "macro_auc": bootstrap(lambda i: macro_auc(probabilities[i], truth[i]), n, seed=seed).as_dict(),
        "accuracy": bootstrap(lambda i: float((predicted[i] == truth[i]).mean()), n, seed=seed).as_dict(),
        "balanced_accuracy": bootstrap(
            lambda i: balanced_accuracy(confusion(truth[i], predicted[i], k)), n, seed=seed
        ).as_dict(),
        "per_class": {name: per_class(name, index) for index, name in enumerate(classes)},
        "confusion": confusion(truth, predicted, k).tolist(),
        "bootstrap": {"rounds": 1000, "interval": "percentile 95%", "unit": "case"},
    }
    return report
