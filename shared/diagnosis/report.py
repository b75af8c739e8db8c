"""The evaluation report of a diagnostic model on one labelled set, every figure with its 95% interval
and the cases it rests on; a figure with too few cases has no value and a note saying why."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.diagnosis.metrics import (
    MIN_CASES,
    MIN_CLASS_CASES,
    auc,
    balanced_accuracy,
    confusion,
    dice,
    estimate,
    macro_auc,
)


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

        positive = int((truth == index).sum())
        row: dict[str, Any] = {
            "cases": positive,
            "auc": estimate(
                lambda i: auc(probabilities[i, index], truth[i] == index),
                n,
                cases=min(positive, n - positive),
                minimum=MIN_CLASS_CASES,
                what=f"cases on the smaller side of {name} against the rest",
                seed=seed,
            ).as_dict(),
            "sensitivity": estimate(
                sens, n, cases=positive, minimum=MIN_CLASS_CASES, what=f"{name} cases", seed=seed
            ).as_dict(),
            "specificity": estimate(
                spec,
                n,
                cases=n - positive,
                minimum=MIN_CLASS_CASES,
                what=f"cases other than {name}",
                seed=seed,
            ).as_dict(),
        }
        if predicted_masks is not None and true_masks is not None:
            members = np.flatnonzero(truth == index)
            scores = [dice(predicted_masks[m], true_masks[m]) for m in members]
            values = np.array([s for s in scores if s is not None], dtype=np.float64)
            row["dice"] = estimate(
                lambda i: float(values[i].mean()),
                len(values),
                cases=len(values),
                minimum=MIN_CLASS_CASES,
                what=f"{name} cases with a lesion",
                seed=seed,
            ).as_dict()
        return row

    def overall(statistic: Any) -> dict[str, Any]:
        return estimate(statistic, n, cases=n, minimum=MIN_CASES, what="cases", seed=seed).as_dict()

    report: dict[str, Any] = {
        "cases": n,
        "classes": list(classes),
        "macro_auc": overall(lambda i: macro_auc(probabilities[i], truth[i])),
        "accuracy": overall(lambda i: float((predicted[i] == truth[i]).mean())),
        "balanced_accuracy": overall(lambda i: balanced_accuracy(confusion(truth[i], predicted[i], k))),
        "per_class": {name: per_class(name, index) for index, name in enumerate(classes)},
        "confusion": confusion(truth, predicted, k).tolist(),
        "bootstrap": {"rounds": 1000, "interval": "percentile 95%", "unit": "case"},
    }
    return report
