"""What every generator backend offers: train under a DP plan, sample, save, load.

The DP machinery is not the backend's business beyond one rule: every update that reads real
examples goes through the `PrivateModule` it is given (or through none, when the plan is
non-private), once per Poisson batch. That is what makes a DP diffusion backend a drop-in: its
denoiser takes the discriminator's place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from numpy.typing import NDArray
from safetensors.torch import load_file, save_file

from shared.privacy import Mechanism
from site_agent.errors import SiteRefusal


class GeneratorError(SiteRefusal):
    """A generator that cannot be trained, saved, loaded or sampled as asked."""

    reason = "not_ready"
    public_detail = (
        "this site cannot train or use a generator as asked (for example too few labelled training "
        "patients); details are in the site's log"
    )


@dataclass(frozen=True)
class TrainingSet:
    """One example per patient: box and mask stacked as channels, in [-1, 1], and class indices."""

    volumes: torch.Tensor  # (N, 2, D, D, D) float32
    labels: torch.Tensor  # (N,) int64
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class TrainingPlan:
    mechanism: Mechanism | None  # None: non-private (benchmarking only)
    max_grad_norm: float
    batch_size: int  # expected real examples per step (= sample_rate * N)
    steps: int
    accountant: str
    seed: int  # secret: it seeds the batch draws and, through torch's generator, Opacus' noise


@dataclass(frozen=True)
class StepReport:
    step: int
    steps: int
    steps_charged: int  # optimiser steps the accountant recorded so far (0 when non-private)
    losses: dict[str, float]


# Called after each step, for progress; it must not touch the training state.
StepCallback = Callable[[StepReport], None]


class Checkpointer(Protocol):
    def due(self, step: int) -> bool: ...
    def save(self, step: int, state: dict[str, Any]) -> None: ...
    def load(self) -> tuple[int, dict[str, Any]] | None: ...


@dataclass(frozen=True)
class Samples:
    images: NDArray[np.float32]  # (K, D, D, D) in [-1, 1]
    masks: NDArray[np.uint8]  # (K, D, D, D) in {0, 1}
    labels: NDArray[np.int64]  # (K,)


WEIGHTS = "generator.safetensors"
CARD = "generator.json"


def save_generator_files(folder: Path, state: dict[str, torch.Tensor], card: dict[str, Any]) -> str:
    """Write a generator's weights (safetensors), then its card holding their sha256, each
    atomically; return that sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS}.tmp"
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in state.items()},
        str(tmp),
        metadata={"backend": card["backend"], "version": card["version"]},
    )
    tmp.replace(folder / WEIGHTS)
    sha = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
    card_tmp = folder / f".{CARD}.tmp"
    card_tmp.write_text(json.dumps({**card, "weights_sha256": sha}, indent=2) + "\n")
    card_tmp.replace(folder / CARD)
    return sha


def load_generator_files(
    folder: Path, device: torch.device
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A generator's card and weights, the weights checked against the card's sha256 (never
    unpickled). Missing or unreadable files raise OSError, KeyError or ValueError."""
    card = json.loads((folder / CARD).read_text())
    weights = folder / WEIGHTS
    if hashlib.sha256(weights.read_bytes()).hexdigest() != card["weights_sha256"]:
        raise GeneratorError(f"generator weights in {folder} do not match their card's sha256")
    return card, load_file(str(weights), device=str(device))


class GeneratorBackend(Protocol):
    name: ClassVar[str]
    version: ClassVar[str]
    # True: the backend reads every patient once, in one step at sample rate 1 (a Gaussian
    # mechanism), whatever the settings' epochs and batch size say.
    releases_once: ClassVar[bool]

    def train(
        self, data: TrainingSet, plan: TrainingPlan, *, checkpoints: Checkpointer, on_step: StepCallback
    ) -> int:
        """Train (resuming from the last checkpoint if any); return the optimiser steps charged."""
        ...

    def sample(self, labels: NDArray[np.int64], *, seed: int, batch_size: int = 8) -> Samples: ...

    def save(self, folder: Path) -> str:
        """Write the weights (safetensors) and the backend's card; return the weights' sha256."""
        ...

    def foundation(self) -> tuple[str, str] | None:
        """The id and sha256 of the public foundation it was fine-tuned from, if any."""
        ...
