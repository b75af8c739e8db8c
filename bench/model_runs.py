"""Diagnostic models for the benchmarks, trained `scale.jobs` at a time by the coordinator's own code.

On a 2-core CPU two training processes of one thread each finish a batch of 3D models sooner than
one process with two threads (the networks are too small to keep two threads busy), as for the
generators in bench.synthetic_runs. A model folder that already holds a finished model (its card)
is read back, not retrained, so a run with --work picks up where an earlier one stopped.
"""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.phantom_sites import Say
from bench.synthetic_runs import EXTERNAL, SCALES, Scale
from shared.diagnosis.bundle import Task
from shared.diagnosis.model_files import METADATA


@dataclass(frozen=True)
class ModelJob:
    dataset: Path
    folder: Path
    task: Task
    seed: int = 0


def train_models(jobs: list[ModelJob], scale: Scale, say: Say) -> list[dict[str, Any]]:
    """Train the jobs (in the order given) and return, for each, its folder, task, cases, epochs
    run and training seconds (0 for a model read back)."""
    say(f"training {len(jobs)} diagnostic models, {scale.jobs} at a time")
    args = [(str(j.dataset), str(j.folder), j.task, j.seed, scale.name) for j in jobs]
    if scale.jobs == 1 or len(jobs) == 1:
        done = [_train_one(*a) for a in args]
    else:
        with ProcessPoolExecutor(scale.jobs, mp_context=get_context("forkserver")) as pool:
            done = list(pool.map(_train_one, *zip(*args, strict=True)))
    for job, model in zip(jobs, done, strict=True):
        cases, epochs, seconds = model["cases"], model["epochs_run"], model["train_s"]
        say(f"model {job.folder.name}: {cases} cases, {epochs} epochs, {seconds:.0f} s")
    return done


def _train_one(dataset: str, folder: str, task: Task, seed: int, scale_name: str) -> dict[str, Any]:
    scale = SCALES[scale_name]
    if scale.jobs > 1:  # one thread each, not several fighting over the cores
        import torch

        torch.set_num_threads(1)
    from coordinator.diagnosis.training import TrainOptions, train_model

    out = Path(folder)
    started = time.perf_counter()
    if not (out / METADATA).exists():
        options = TrainOptions(
            task=task, epochs=scale.diagnosis_epochs, patience=scale.diagnosis_patience, seed=seed
        )
        train_model(Path(dataset), out, options)
    seconds = time.perf_counter() - started
    training = json.loads((out / METADATA).read_text())["training"]
    return {
        "folder": out,
        "task": task,
        "cases": training["cases"] + training["validation_cases"],
        "epochs_run": training["epochs_run"],
        "train_s": round(seconds, 1),
    }


def score(model: dict[str, Any], tests: dict[str, Path]) -> dict[str, Any]:
    """A trained model's evaluation report (coordinator.diagnosis.evaluation) on the internal and
    external held-out sets, reduced to what the seed tables show."""
    from coordinator.diagnosis.evaluation import evaluate_model

    out: dict[str, Any] = {"train_s": model["train_s"]}
    for name in ("internal", EXTERNAL):
        report = evaluate_model(model["folder"], tests[name])
        out[name] = {
            "cases": report["cases"],
            "macro_auc": report["macro_auc"],
            "balanced_accuracy": report["balanced_accuracy"],
            "per_class_auc": {k: v["auc"]["value"] for k, v in report["per_class"].items()},
            "per_class_dice": {k: v.get("dice", {}).get("value") for k, v in report["per_class"].items()},
        }
    return out


def across_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread (sample standard deviation, min, max) of macro AUC across seeds."""
    out: dict[str, Any] = {"seeds": len(runs)}
    for test in ("internal", EXTERNAL):
        values = [r[test]["macro_auc"]["value"] for r in runs if r[test]["macro_auc"]["value"] is not None]
        out[test] = {
            "mean": round(statistics.mean(values), 4) if values else None,
            "sd": round(statistics.stdev(values), 4) if len(values) > 1 else None,
            "min": round(min(values), 4) if values else None,
            "max": round(max(values), 4) if values else None,
        }
    return out
