"""The phantom federation the utility and privacy benchmarks share: hospitals, and one DP generator
per hospital and privacy level, each trained and released by the real site code.

    <work>/sites/<profile>/                           a phantom hospital, ingested (its store, no DICOM kept)
    <work>/runs/<backend>-<profile>-eps<E>/           a copy of it that spends one budget once, at epsilon E,
                                                      on one generator backend
    <work>/runs/<backend>-<profile>-eps<E>/bench.json what ran: the accountant's epsilon, audit, seconds

Everything is written once and reused by a later run with the same work folder, so the privacy
benchmark can attack the generators the utility benchmark trained. Generators train two at a time
in worker processes of one thread each: on a CPU, small 3D networks use two processes better than
one process with two threads.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.phantom_sites import Say, SiteScale, build_site, copy_site, site_settings
from shared.crop_box import CPU_BOX, CPU_SPACING_MM, GPU_BOX, GPU_SPACING_MM
from shared.phantom.profiles import TRAINING_PROFILES
from shared.privacy import decode_epsilon, encode_epsilon

if TYPE_CHECKING:
    from site_agent.config import SiteSettings

EPSILONS: tuple[float, ...] = (1.0, 4.0, 8.0, math.inf)
EXTERNAL = "external"
SEED = 500


@dataclass(frozen=True)
class Scale:
    name: str
    site: SiteScale
    external_per_class: int
    synthetic_per_class: int  # per site and class, as a round's --per-class
    diagnosis_epochs: int
    diagnosis_patience: int
    jobs: int  # generators and diagnostic models trained at once


SCALES = {
    "ci": Scale(
        name="ci",
        site=SiteScale(
            train_per_class=12,
            test_per_class=4,
            box=CPU_BOX,
            spacing_mm=CPU_SPACING_MM,
            matrix=96,
            slice_mm=5.0,
            generator_width=8,
            generator_epochs=12.0,
            generator_batch=10,
        ),
        external_per_class=10,
        synthetic_per_class=10,
        diagnosis_epochs=30,
        diagnosis_patience=12,
        jobs=2,
    ),
    # Checks the whole pipeline in minutes; its numbers mean nothing.
    "smoke": Scale(
        name="smoke",
        site=SiteScale(
            train_per_class=2,
            test_per_class=2,
            box=(32, 32, 48),
            spacing_mm=6.0,
            matrix=96,
            slice_mm=5.0,
            generator_width=4,
            generator_epochs=2.0,
            generator_batch=6,
        ),
        external_per_class=2,
        synthetic_per_class=3,
        diagnosis_epochs=2,
        diagnosis_patience=2,
        jobs=1,
    ),
    # The GPU configuration: the GPU box at 2 mm and hundreds of patients per hospital.
    "full": Scale(
        name="full",
        site=SiteScale(
            train_per_class=40,
            test_per_class=10,
            box=GPU_BOX,
            spacing_mm=GPU_SPACING_MM,
            matrix=192,
            slice_mm=2.5,
            generator_width=16,
            generator_epochs=60.0,
            generator_batch=32,
        ),
        external_per_class=30,
        synthetic_per_class=50,
        diagnosis_epochs=60,
        diagnosis_patience=12,
        jobs=1,
    ),
}


def eps_name(epsilon: float) -> str:
    return "inf" if math.isinf(epsilon) else f"{epsilon:g}"


@dataclass(frozen=True)
class GeneratorRun:
    """One generator backend at one privacy level, trained at every training hospital."""

    backend: str  # a [generator] backend: "dpgan3d", "ldm3d", "lesionstats"
    epsilon: float

    @property
    def name(self) -> str:
        return f"{self.backend}-eps{eps_name(self.epsilon)}"


GAN_RUNS = tuple(GeneratorRun("dpgan3d", e) for e in EPSILONS)
FOUNDATION_BACKENDS = ("ldm3d", "lesionstats")


@dataclass(frozen=True)
class Release:
    """One hospital's generator at one privacy level, and the set it released (if the audit let it)."""

    profile: str
    backend: str
    epsilon_asked: float
    home: Path
    epsilon_spent: float  # the accountant's, over the steps that ran; inf without DP
    delta: float
    noise_multiplier: float | None
    steps: int
    patients: int
    audit_passed: bool
    audit_reason: str
    released: Path | None
    train_s: float

    def public(self) -> dict[str, Any]:
        return {
            "site": self.profile,
            "backend": self.backend,
            "epsilon_asked": eps_name(self.epsilon_asked),
            "epsilon_spent": None if math.isinf(self.epsilon_spent) else round(self.epsilon_spent, 4),
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "steps": self.steps,
            "patients": self.patients,
            "audit_passed": self.audit_passed,
            "audit_reason": self.audit_reason,
            "train_s": round(self.train_s, 1),
        }


def build_sites(work: Path, scale: Scale, say: Say) -> dict[str, Path]:
    """The four training hospitals and the external one (which only evaluates)."""
    homes = {}
    for n, profile in enumerate(TRAINING_PROFILES):
        homes[profile] = build_site(work / "sites", profile, scale.site, seed=SEED + n, say=say)
    scale_external = replace(scale.site, test_per_class=scale.external_per_class)
    homes[EXTERNAL] = build_site(
        work / "sites", EXTERNAL, scale_external, seed=SEED + 99, say=say, train=False
    )
    return homes


def train_releases(
    work: Path,
    homes: dict[str, Path],
    scale: Scale,
    say: Say,
    runs: Sequence[GeneratorRun] = GAN_RUNS,
    foundation: Path | None = None,
) -> list[Release]:
    """A generator per training hospital and run, trained (or read back) and released. The
    foundation backends start from `foundation` (a `coordinator foundation train` folder)."""
    if foundation is None and any(r.backend in FOUNDATION_BACKENDS for r in runs):
        raise ValueError("the foundation backends need --foundation")
    tasks = [(profile, run) for run in runs for profile in TRAINING_PROFILES]
    todo = [(p, r) for p, r in tasks if not (_run_home(work, p, r) / "bench.json").exists()]
    if todo:
        say(f"training {len(todo)} generators, {scale.jobs} at a time")
    args = [
        (str(homes[p]), str(_run_home(work, p, r)), r.backend, r.epsilon, scale.name, str(foundation))
        for p, r in todo
    ]
    if scale.jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(scale.jobs, mp_context=get_context("forkserver")) as pool:
            for n, line in enumerate(pool.map(_train_one, *zip(*args, strict=True))):
                say(f"[{n + 1}/{len(todo)}] {line}")
    else:
        for n, a in enumerate(args):
            say(f"[{n + 1}/{len(todo)}] {_train_one(*a)}")
    return [read_release(work, p, r) for p, r in tasks]


def generator_settings(settings: SiteSettings, backend: str, foundation: str) -> SiteSettings:
    """A bench site's settings with its generator set to `backend` (and, for the backends that
    start from one, `foundation`)."""
    update: dict[str, Any] = {"backend": backend}
    if backend in FOUNDATION_BACKENDS:
        update["foundation"] = Path(foundation)
    return settings.model_copy(update={"generator": settings.generator.model_copy(update=update)})


def _run_home(work: Path, profile: str, run: GeneratorRun) -> Path:
    return work / "runs" / f"{run.backend}-{profile}-eps{eps_name(run.epsilon)}"


def _train_one(base: str, target: str, backend: str, epsilon: float, scale_name: str, foundation: str) -> str:
    if SCALES[scale_name].jobs > 1:
        import torch

        torch.set_num_threads(1)
    from site_agent.generator.training_run import train_generator
    from site_agent.synthetic.export import ExportRefused, release_set

    scale = SCALES[scale_name]
    home = copy_site(Path(base), Path(target))
    settings = generator_settings(site_settings(home, scale.site), backend, foundation)
    started = time.perf_counter()
    run = train_generator(settings, epsilon=epsilon, round_id=f"bench-{backend}-eps{eps_name(epsilon)}")
    train_s = time.perf_counter() - started
    released: str | None = None
    try:
        sampled = release_set(settings, run, per_class=scale.synthetic_per_class, seed=SEED)
        released, passed, reason = str(sampled.folder), True, sampled.audit.reason
    except ExportRefused as refusal:
        passed, reason = False, str(refusal)
    record = {
        "profile": Path(base).name,
        "backend": backend,
        "epsilon_asked": eps_name(epsilon),
        "epsilon_spent": encode_epsilon(run.privacy.epsilon),
        "delta": run.privacy.delta,
        "noise_multiplier": run.privacy.noise_multiplier,
        "steps": run.privacy.steps,
        "patients": run.patients,
        "audit_passed": passed,
        "audit_reason": reason,
        "released": released,
        "train_s": train_s,
    }
    tmp = Path(target) / ".bench.json.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(Path(target) / "bench.json")
    spent = "inf" if math.isinf(run.privacy.epsilon) else f"{run.privacy.epsilon:.2f}"
    return (
        f"{backend} {Path(base).name} epsilon {eps_name(epsilon)}: {run.privacy.steps} steps in "
        f"{train_s:.0f} s, spent {spent}, audit {'passed' if passed else 'REFUSED'} (pid {os.getpid()})"
    )


def read_release(work: Path, profile: str, run: GeneratorRun) -> Release:
    home = _run_home(work, profile, run)
    data = json.loads((home / "bench.json").read_text())
    return Release(
        profile=profile,
        backend=run.backend,
        epsilon_asked=run.epsilon,
        home=home,
        epsilon_spent=decode_epsilon(data["epsilon_spent"]),
        delta=data["delta"],
        noise_multiplier=data["noise_multiplier"],
        steps=data["steps"],
        patients=data["patients"],
        audit_passed=data["audit_passed"],
        audit_reason=data["audit_reason"],
        released=Path(data["released"]) if data["released"] else None,
        train_s=data["train_s"],
    )
