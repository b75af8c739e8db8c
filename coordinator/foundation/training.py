"""Training a foundation: the autoencoder on the public boxes, then the denoiser on their latents.

Central and without DP: only public CT is read (coordinator.foundation.corpus). The autoencoder
learns image and mask together (an L1 loss on each, the sparse mask's lesion voxels weighted up so
that a nodule is not averaged away, and a small KL term); the denoiser learns, on latents scaled
to unit spread, to predict the noise MONAI's DDPM schedule added, with every public box under the
`public` class row. Progress is reported every few steps with an estimate of the time left.

The autoencoder runs under bfloat16 autocast by default (weights and optimiser stay float32): on
a CPU with AVX-512 BF16 its step takes about half the time, its full-size 3D convolutions being
most of the work. The denoiser stays in float32, which measured faster at latent size. Both
learning rates warm up over the first 5% of steps, then follow a cosine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import monai
import numpy as np
import torch
import torch.nn.functional as F

from coordinator.errors import CoordinatorError
from coordinator.foundation.corpus import PublicCorpus
from shared import __version__
from shared.crop_box import box_text
from shared.foundation.artefact import Foundation
from shared.foundation.networks import FoundationSpec, build_autoencoder, build_denoiser, training_scheduler
from shared.schemas.foundation_card import FoundationCard

Progress = Callable[[str], None]
KL_WEIGHT = 1e-6
LESION_WEIGHT = 20.0  # mask channel: lesion voxels are ~0.1% of a box
STALLED_LOSS = 0.95  # a denoiser that outputs zeros scores 1.0 against unit-variance noise


class FoundationTrainingError(CoordinatorError):
    """Training settings that cannot work (no steps, a batch larger than the corpus, ...)."""


@dataclass(frozen=True)
class TrainingSettings:
    foundation_id: str
    autoencoder_epochs: float = 30.0
    denoiser_epochs: float = 400.0
    autoencoder_batch: int = 4
    denoiser_batch: int = 16
    autoencoder_learning_rate: float = 2e-3
    denoiser_learning_rate: float = 1e-3  # 2e-3 left the denoiser predicting zeros (loss 1.0)
    mixed_precision: bool = True
    seed: int = 0
    description: str = ""

    def check(self, corpus_size: int) -> None:
        for name in ("autoencoder_epochs", "denoiser_epochs"):
            if not getattr(self, name) > 0:
                raise FoundationTrainingError(f"--{name.replace('_', '-')} must be above 0")
        for name in ("autoencoder_batch", "denoiser_batch"):
            if getattr(self, name) < 1:
                raise FoundationTrainingError(f"--{name.replace('_', '-')} must be at least 1")
        if corpus_size < 2:
            raise FoundationTrainingError(f"a foundation needs at least 2 public volumes, got {corpus_size}")


def _steps(epochs: float, size: int, batch: int) -> int:
    return max(1, math.ceil(epochs * size / min(batch, size)))


class _Reporter:
    def __init__(self, say: Progress, name: str, steps: int) -> None:
        self.say, self.name, self.steps = say, name, steps
        self.start = time.monotonic()
        self.every = max(1, steps // 20)

    def step(self, step: int, loss: float) -> None:
        if step % self.every and step != self.steps:
            return
        spent = time.monotonic() - self.start
        left = spent / step * (self.steps - step)
        self.say(
            f"{self.name}: step {step}/{self.steps}, loss {loss:.4f}, {spent:.0f} s, about {left:.0f} s left"
        )


def _schedule(
    optimiser: torch.optim.Optimizer, lr: float, steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=lr, total_steps=max(steps, 2), pct_start=0.05
    )


def _autoencoder_loss(
    net: torch.nn.Module, batch: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    reconstruction, mu, sigma = net(batch)
    image = F.l1_loss(reconstruction[:, 0], batch[:, 0])
    weight = 1.0 + LESION_WEIGHT * (batch[:, 1] > 0).float()
    mask = (weight * (reconstruction[:, 1] - batch[:, 1]).abs()).mean()
    kl = 0.5 * (mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2).clamp_min(1e-12)) - 1).mean()
    return image + mask + KL_WEIGHT * kl, image, mask


def train_foundation(
    corpus: PublicCorpus, spec: FoundationSpec, settings: TrainingSettings, progress: Progress | None = None
) -> Foundation:
    say = progress or (lambda _m: None)
    settings.check(len(corpus))
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    data = torch.from_numpy(corpus.volumes)
    started = time.monotonic()

    def autocast() -> torch.autocast:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.mixed_precision)

    autoencoder = build_autoencoder(spec)
    optimiser = torch.optim.AdamW(autoencoder.parameters(), lr=settings.autoencoder_learning_rate)
    ae_steps = _steps(settings.autoencoder_epochs, len(data), settings.autoencoder_batch)
    schedule = _schedule(optimiser, settings.autoencoder_learning_rate, ae_steps)
    report = _Reporter(say, "autoencoder", ae_steps)
    autoencoder.train()
    image_l1 = mask_l1 = math.nan
    for step in range(1, ae_steps + 1):
        chosen = rng.choice(len(data), size=min(settings.autoencoder_batch, len(data)), replace=False)
        with autocast():
            loss, image, mask = _autoencoder_loss(autoencoder, data[chosen])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        image_l1, mask_l1 = image.item(), mask.item()
        report.step(step, loss.item())
    autoencoder.eval()
    ae_seconds = time.monotonic() - started

    with torch.no_grad():
        encoded = [autoencoder.encode(data[i : i + 8]) for i in range(0, len(data), 8)]
    mu = torch.cat([m for m, _ in encoded])
    sigma = torch.cat([s for _, s in encoded])
    scale_factor = float(1.0 / mu.std())

    denoiser = build_denoiser(spec)
    scheduler = training_scheduler(spec)
    optimiser = torch.optim.AdamW(denoiser.parameters(), lr=settings.denoiser_learning_rate)
    dn_steps = _steps(settings.denoiser_epochs, len(data), settings.denoiser_batch)
    schedule = _schedule(optimiser, settings.denoiser_learning_rate, dn_steps)
    report = _Reporter(say, "denoiser", dn_steps)
    denoiser.train()
    public = torch.full((min(settings.denoiser_batch, len(data)),), spec.public_class, dtype=torch.long)
    denoiser_loss = running = math.nan
    for step in range(1, dn_steps + 1):
        picked = torch.from_numpy(rng.choice(len(data), size=len(public), replace=False))
        # A fresh draw from each box's posterior every step: the latents the decoder knows.
        latent = (mu[picked] + sigma[picked] * torch.randn_like(mu[picked])) * scale_factor
        noise = torch.randn_like(latent)
        timesteps = torch.randint(0, spec.timesteps, (len(public),), dtype=torch.long)
        noisy = scheduler.add_noise(original_samples=latent, noise=noise, timesteps=timesteps)
        loss = F.mse_loss(denoiser(noisy, timesteps=timesteps, class_labels=public), noise)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        denoiser_loss = loss.item()
        running = denoiser_loss if step == 1 else 0.98 * running + 0.02 * denoiser_loss
        report.step(step, denoiser_loss)
        if step == max(200, dn_steps // 4) and running > STALLED_LOSS:
            raise FoundationTrainingError(
                f"the denoiser is not learning (its loss is still {running:.3f} after {step} steps: it "
                "predicts no noise at all); train again with a lower --denoiser-learning-rate"
            )
    denoiser.eval()

    card = FoundationCard(
        foundation_id=settings.foundation_id,
        description=settings.description
        or f"chest CT foundation, {box_text(spec.box)} voxels at {spec.spacing_mm:g} mm, public CT only",
        spec=spec.to_json(),
        scale_factor=scale_factor,
        corpus=tuple(corpus.sources),
        training={
            "autoencoder": {
                "epochs": settings.autoencoder_epochs,
                "steps": ae_steps,
                "batch": settings.autoencoder_batch,
                "final_image_l1": round(image_l1, 5),
                "final_mask_l1": round(mask_l1, 5),
                "seconds": round(ae_seconds, 1),
            },
            "denoiser": {
                "epochs": settings.denoiser_epochs,
                "steps": dn_steps,
                "batch": settings.denoiser_batch,
                "final_loss": round(denoiser_loss, 5),
                "seconds": round(time.monotonic() - started - ae_seconds, 1),
            },
            "learning_rates": {
                "autoencoder": settings.autoencoder_learning_rate,
                "denoiser": settings.denoiser_learning_rate,
            },
            "autoencoder_precision": "bfloat16 autocast" if settings.mixed_precision else "float32",
            "seed": settings.seed,
            "threads": torch.get_num_threads(),
            "differential_privacy": False,  # public data only
        },
        weights_sha256={},
        versions={"fedsynth": __version__, "torch": torch.__version__, "monai": monai.__version__},
    )
    return Foundation(spec, autoencoder, denoiser, card)
