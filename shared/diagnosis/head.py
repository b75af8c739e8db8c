"""The segmenter's case head: multinomial logistic regression on the lesion features.

Linear on purpose: 22 standardised features and six classes make 138 weights, which
tens of patients per class can fit without overfitting (a hidden layer would not be), and its
weights read as which sign points to which class. It is fitted once, after the segmenter, on the
training cases' features (`fit_head`); L2 keeps it from leaning on any one feature.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn


class CaseHead(nn.Module):
    mean: torch.Tensor  # buffers: the training features' mean and spread, saved with the weights
    scale: torch.Tensor

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.linear = nn.Linear(features, classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.scale)


def fit_head(
    features: NDArray[np.float32], labels: NDArray[np.int64], classes: int, *, l2: float = 0.05
) -> CaseHead:
    """Class-balanced cross-entropy plus `l2` times the squared weights, minimised by L-BFGS (the
    problem is convex, so the result does not depend on a seed)."""
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.int64)
    head = CaseHead(x.shape[1], classes)
    head.mean.copy_(x.mean(0))
    head.scale.copy_(x.std(0).clamp_min(1e-3))  # a constant feature stays constant, not infinite
    counts = torch.bincount(y, minlength=classes).clamp_min(1).float()
    loss_fn = nn.CrossEntropyLoss(weight=counts.sum() / (classes * counts))
    nn.init.zeros_(head.linear.weight)
    nn.init.zeros_(head.linear.bias)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(head(x), y) + l2 * head.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return head.eval()
