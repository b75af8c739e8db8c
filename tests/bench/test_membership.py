"""Membership-inference metrics and the shadow attack's classifier."""

from __future__ import annotations

import numpy as np
import pytest

from bench.membership import LogisticAttack, attack_metrics, confidence_features


def test_separated_scores_are_a_perfect_attack() -> None:
    result = attack_metrics(np.array([5.0, 6.0, 7.0]), np.array([1.0, 2.0]))
    assert result["auc"] == 1.0
    assert result["tpr_at_1pct_fpr"] == 1.0
    assert result["fpr_achieved"] == 0.0


def test_identical_distributions_are_chance() -> None:
    rng = np.random.default_rng(0)
    result = attack_metrics(rng.normal(size=2000), rng.normal(size=2000))
    assert result["auc"] == pytest.approx(0.5, abs=0.03)
    assert result["tpr_at_1pct_fpr"] < 0.03
    assert result["fpr_achieved"] <= 0.01


def test_the_threshold_never_lets_more_than_one_percent_of_non_members_through() -> None:
    rng = np.random.default_rng(1)
    non_members = rng.normal(size=350)
    result = attack_metrics(rng.normal(1.0, size=300), non_members)
    assert result["fpr_achieved"] <= 0.01
    assert 0 < result["tpr_at_1pct_fpr"] < 1


def test_an_attack_needs_both_groups() -> None:
    with pytest.raises(ValueError, match="non-members"):
        attack_metrics(np.array([1.0]), np.array([]))


def test_logistic_attack_learns_that_confident_answers_mean_members() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 6, 400)
    member = rng.random(400) < 0.5
    logits = rng.normal(size=(400, 6))
    logits[np.arange(400), labels] += np.where(member, 4.0, 0.5)  # members: more confident
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    features = confidence_features(p, labels)
    attack = LogisticAttack().fit(features[:200], member[:200])
    scores = attack.score(features[200:])
    assert attack_metrics(scores[member[200:]], scores[~member[200:]])["auc"] > 0.8
    with pytest.raises(RuntimeError, match="fit"):
        LogisticAttack().score(features)
