"""Diagnostic metrics as pure functions over arrays, with bootstrap 95% intervals.

One-vs-rest AUC is the Mann-Whitney statistic (the probability that a random case of the class
scores above a random case of the others, ties counting half), so no plotting or ML library is
needed on a site.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata

BOOTSTRAP = 1000
# Below these counts a figure is reported as not estimated, with the reason, never as a number:
# with four cases an accuracy moves in steps of 0.25 and its interval spans almost [0, 1].
MIN_CASES = 10  # held-out cases for accuracy, balanced accuracy and macro AUC
MIN_CLASS_CASES = 3  # cases of a class (and of the other classes) for its AUC, sensitivity, Dice


def auc(scores: NDArray[np.float64], positive: NDArray[np.bool_]) -> float | None:
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(
    scores: NDArray[np.float64], positive: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    order = np.argsort(-scores, kind="stable")
    hits = positive[order]
    tpr = np.concatenate([[0.0], np.cumsum(hits) / max(1, hits.sum())])
    fpr = np.concatenate([[0.0], np.cumsum(~hits) / max(1, (~hits).sum())])
    return fpr, tpr


def confusion(truth: NDArray[np.int64], predicted: NDArray[np.int64], classes: int) -> NDArray[np.int64]:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def macro_auc(probabilities: NDArray[np.float64], truth: NDArray[np.int64]) -> float | None:
    values = [auc(probabilities[:, k], truth == k) for k in range(probabilities.shape[1])]
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def balanced_accuracy(matrix: NDArray[np.int64]) -> float:
    rows = matrix.sum(axis=1)
    recalls = [matrix[k, k] / rows[k] for k in range(len(rows)) if rows[k] > 0]
    return float(np.mean(recalls)) if recalls else 0.0


def dice(predicted: NDArray[np.bool_], truth: NDArray[np.bool_]) -> float | None:
    """None when neither mask has a voxel (a normal case correctly left empty has no overlap to score)."""
    total = int(predicted.sum()) + int(truth.sum())
    return None if total == 0 else float(2 * (predicted & truth).sum() / total)


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None
    cases: int | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, float | int | str | None]:
        out: dict[str, float | int | str | None] = {
            "value": self.value,
            "ci95_low": self.low,
            "ci95_high": self.high,
        }
        if self.cases is not None:
            out["cases"] = self.cases
        if self.note is not None:
            out["note"] = self.note
        return out


def bootstrap(
    statistic: Callable[[NDArray[np.int64]], float | None], n: int, *, seed: int = 0, rounds: int = BOOTSTRAP
) -> Estimate:
    """Percentile interval of `statistic` over case indices resampled with replacement."""
    value = statistic(np.arange(n))
    rng = np.random.default_rng(seed)
    draws = [statistic(rng.integers(0, n, n)) for _ in range(rounds)]
    kept = np.array([d for d in draws if d is not None], dtype=np.float64)
    if value is None or len(kept) < rounds // 2:
        return Estimate(value, None, None)
    low, high = np.percentile(kept, [2.5, 97.5])
    return Estimate(value, float(low), float(high))


def estimate(
    statistic: Callable[[NDArray[np.int64]], float | None],
    n: int,
    *,
    cases: int,
    minimum: int,
    what: str,
    seed: int = 0,
) -> Estimate:
    """`bootstrap`, or no value and the reason when `cases` (of `what`) are fewer than `minimum`."""
    if cases < minimum:
        return Estimate(None, None, None, cases, f"only {cases} {what}; {minimum} needed")
    found = bootstrap(statistic, n, seed=seed)
    note = None if found.value is not None else f"not defined on these {cases} {what}"
    return Estimate(found.value, found.low, found.high, cases, note)
