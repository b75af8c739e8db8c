"""The metrics are right on cases whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from shared.diagnosis.metrics import (
    auc,
    balanced_accuracy,
    bootstrap,
    confusion,
    dice,
    estimate,
    macro_auc,
    roc_curve,
)


def test_auc_is_the_probability_a_positive_outranks_a_negative() -> None:
    positive = np.array([True, True, False, False])
    assert auc(np.array([0.9, 0.8, 0.2, 0.1]), positive) == 1.0
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), positive) == 0.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), positive) == 0.5  # ties count half
    assert auc(np.array([0.9, 0.3, 0.5, 0.1]), positive) == 0.75  # 3 of 4 pairs ordered
    assert auc(np.array([0.9, 0.3]), np.array([True, True])) is None  # no negatives: undefined
    fpr, tpr = roc_curve(np.array([0.9, 0.3, 0.5, 0.1]), positive)
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.75)


def test_confusion_balanced_accuracy_and_macro_auc() -> None:
    truth = np.array([0, 0, 0, 1, 2, 2])
    predicted = np.array([0, 0, 1, 1, 2, 0])
    matrix = confusion(truth, predicted, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert balanced_accuracy(matrix) == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    onehot = np.eye(3)[truth]
    assert macro_auc(onehot, truth) == 1.0


def test_dice_and_an_empty_pair() -> None:
    a = np.zeros((4, 4, 4), bool)
    b = a.copy()
    a[:2], b[1:3] = True, True
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(np.zeros_like(a), np.zeros_like(a)) is None


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_more_cases() -> None:
    rng = np.random.default_rng(1)

    def width(n: int) -> float:
        hits = rng.random(n) < 0.7
        estimate = bootstrap(lambda i: float(hits[i].mean()), n, rounds=400)
        assert estimate.low is not None and estimate.high is not None and estimate.value is not None
        assert estimate.low <= estimate.value <= estimate.high
        return estimate.high - estimate.low

    assert width(400) < width(40)


def test_estimate_gives_an_interval_with_enough_cases_and_a_reason_without() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 40).astype(bool)
    scores = truth + rng.normal(0, 0.8, 40)
    enough = estimate(lambda i: auc(scores[i], truth[i]), 40, cases=40, minimum=10, what="cases")
    assert enough.value is not None and enough.low is not None and enough.high is not None
    assert enough.low < enough.value < enough.high and enough.cases == 40 and enough.note is None
    few = estimate(lambda i: auc(scores[i], truth[i]), 4, cases=4, minimum=10, what="held-out cases")
    assert few.value is None and few.low is None and few.note == "only 4 held-out cases; 10 needed"
    single = estimate(lambda i: auc(scores[i], np.ones(len(i), bool)), 40, cases=40, minimum=10, what="cases")
    assert single.value is None and single.note == "not defined on these 40 cases"  # no negatives at all
