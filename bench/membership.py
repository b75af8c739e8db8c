"""Membership inference: attack scores and how well they separate members from non-members.

Scores are "higher means more likely a member". `attack_metrics` reports the ROC AUC and the true
positive rate at a false positive rate of at most 1%: the threshold is the smallest score above
all but 1% of the non-members, so with fewer than 100 non-members it sits above every one of them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from shared.diagnosis.metrics import auc

FPR = 0.01


def attack_metrics(members: NDArray[np.float64], non_members: NDArray[np.float64]) -> dict[str, Any]:
    if len(members) == 0 or len(non_members) == 0:
        raise ValueError("an attack needs members and non-members")
    scores = np.concatenate([members, non_members])
    truth = np.concatenate([np.ones(len(members), bool), np.zeros(len(non_members), bool)])
    allowed = math.floor(FPR * len(non_members))  # non-members that may score above the threshold
    threshold = np.sort(non_members)[::-1][allowed] if allowed < len(non_members) else -np.inf
    return {
        "members": len(members),
        "non_members": len(non_members),
        "auc": auc(scores, truth),
        "tpr_at_1pct_fpr": float((members > threshold).mean()),
        "fpr_achieved": float((non_members > threshold).mean()),
    }


def nearest_distance(candidates: torch.Tensor, reference: torch.Tensor) -> NDArray[np.float64]:
    """RMS distance of each candidate feature row to its nearest reference row."""
    d = torch.cdist(candidates, reference) / math.sqrt(candidates.shape[1])
    return d.min(dim=1).values.double().numpy()


def confidence_features(probabilities: NDArray[np.float64], labels: NDArray[np.int64]) -> NDArray[np.float64]:
    """What a shadow-model attack sees of a case: the model's confidence in the true class, its
    loss, its top probability and the entropy of its answer."""
    p = np.clip(probabilities, 1e-7, 1.0)
    true = p[np.arange(len(labels)), labels]
    entropy = -(p * np.log(p)).sum(axis=1)
    return np.stack([true, -np.log(true), p.max(axis=1), entropy], axis=1)


class LogisticAttack:
    """A logistic regression on confidence features, fitted on shadow models' members and
    non-members and then applied to the target model."""

    def __init__(self, steps: int = 2000, learning_rate: float = 0.05) -> None:
        self.steps, self.learning_rate = steps, learning_rate
        self.mean: NDArray[np.float64] | None = None
        self.std: NDArray[np.float64] | None = None
        self.weights: NDArray[np.float64] | None = None

    def fit(self, features: NDArray[np.float64], is_member: NDArray[np.bool_]) -> LogisticAttack:
        self.mean, self.std = features.mean(axis=0), features.std(axis=0) + 1e-9
        x = torch.as_tensor((features - self.mean) / self.std, dtype=torch.float64)
        y = torch.as_tensor(is_member, dtype=torch.float64)
        w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.Adam([w], lr=self.learning_rate)
        for _ in range(self.steps):
            optimizer.zero_grad()
            logits = x @ w[:-1] + w[-1]
            loss = (
                torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + 1e-3 * (w[:-1] ** 2).sum()
            )
            loss.backward()
            optimizer.step()
        self.weights = w.detach().numpy()
        return self

    def score(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.weights is None or self.mean is None or self.std is None:
            raise RuntimeError("fit the attack first")
        x = (features - self.mean) / self.std
        return np.asarray(x @ self.weights[:-1] + self.weights[-1], dtype=np.float64)
