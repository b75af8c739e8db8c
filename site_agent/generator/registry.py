"""Backends by name: the one place a generator is plugged in."""

from __future__ import annotations

from pathlib import Path

import torch

from site_agent.config import SiteSettings
from site_agent.generator.backend import GeneratorBackend, GeneratorError
from site_agent.generator.dpgan3d.backend import DPGan3D
from site_agent.generator.ldm3d.backend import LatentDiffusion3D, open_foundation
from site_agent.generator.lesionstats.backend import FoundationLesionStatistics


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
    if g.foundation is None:
        raise GeneratorError(
            f'[generator] backend = "{g.backend}" starts from a public foundation, and none was given: '
            "the coordinator names one in the round (rounds launch --foundation ID), or set [generator] "
            'foundation to its folder for local training (or choose backend = "dpgan3d")'
        )
    foundation, sha256 = open_foundation(g.foundation, g.foundation_sha256, device)
    if g.backend == "lesionstats":
        return FoundationLesionStatistics(
            foundation=foundation,
            foundation_sha256=sha256,
            classes=settings.classes,
            box=settings.preprocessing.box,
            sampling_steps=g.sampling_steps,
            device=device,
        )
    if g.backend == "ldm3d":
        return LatentDiffusion3D(
            foundation=foundation,
            foundation_sha256=sha256,
            classes=settings.classes,
            box=settings.preprocessing.box,
            trainable=g.trainable,
            draws_per_patient=g.draws_per_patient,
            learning_rate=g.learning_rate,
            grad_sample_mode=g.grad_sample_mode,
            sampling_steps=g.sampling_steps,
            device=device,
        )
    raise GeneratorError(f"unknown generator backend {g.backend!r}")


def load_backend(name: str, folder: Path, device: torch.device) -> GeneratorBackend:
    if name == DPGan3D.name:
        return DPGan3D.load(folder, device=device)
    if name == LatentDiffusion3D.name:
        return LatentDiffusion3D.load(folder, device=device)
    if name == FoundationLesionStatistics.name:
        return FoundationLesionStatistics.load(folder, device=device)
    raise GeneratorError(f"unknown generator backend {name!r} in {folder}")
