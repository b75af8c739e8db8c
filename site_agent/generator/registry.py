"""Backends by name: the one place a new generator (DP diffusion next) is plugged in."""

from __future__ import annotations

from pathlib import Path

import torch

from site_agent.config import SiteSettings
from site_agent.generator.backend import GeneratorBackend, GeneratorError
from site_agent.generator.dpgan3d.backend import DPGan3D


def new_backend(settings: SiteSettings, device: torch.device) -> GeneratorBackend:
    g = settings.generator
    if g.backend == "dpgan3d":
        return DPGan3D(
            box=settings.preprocessing.box,
            classes=settings.classes,
            latent_dim=g.latent_dim,
            width=g.width,
            learning_rate=g.learning_rate,
            grad_sample_mode=g.grad_sample_mode,
            device=device,
        )
    raise GeneratorError(f"unknown generator backend {g.backend!r}")


def load_backend(name: str, folder: Path, device: torch.device) -> GeneratorBackend:
    if name == DPGan3D.name:
        return DPGan3D.load(folder, device=device)
    raise GeneratorError(f"unknown generator backend {name!r} in {folder}")
