"""DP versus non-private generator training: step time, peak memory, sampling speed.

    python -m bench.generator [--steps 6] [--quick]

Each configuration runs in its own process so its peak memory is its own: the real `dpgan3d`
backend trains on random boxes (the speed of a step does not depend on the pixel values) with
Poisson batches of the stated expected size, and the median step time over the measured steps is
reported (the first steps are warm-up). The `lesionstats` backend (from the shipped foundation, at
its CPU box) has one step, the release over every patient: it is timed `--steps` times on random
boxes each holding a ball-shaped lesion, with its Gaussian mechanism and without, and its sampling
(anatomy bank boxes with the lesions painted in) as volumes per second. Ratios compare
configurations of one run on one machine. On a CUDA machine peak memory is the GPU's; on CPU it
is the process's resident set.

Writes bench/results/generator.json (bench/results/generator-cuda.json on a GPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import peak_rss_mb, write_result

WARMUP = 2


def _one(case: dict[str, Any]) -> dict[str, Any]:
    import torch

    from shared.classes import DEFAULT_CLASSES
    from shared.privacy import Mechanism
    from site_agent.generator.backend import StepReport, TrainingPlan, TrainingSet
    from site_agent.generator.checkpoints import FileCheckpointer
    from site_agent.generator.dpgan3d.backend import DPGan3D

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    box, batch, steps, patients = tuple(case["box"]), case["batch"], case["steps"], 64
    torch.manual_seed(0)
    data = TrainingSet(
        volumes=torch.rand(patients, 2, *box) * 2 - 1,
        labels=torch.randint(0, len(DEFAULT_CLASSES), (patients,)),
        classes=DEFAULT_CLASSES,
    )
    backend = DPGan3D(
        box=box,
        classes=DEFAULT_CLASSES,
        latent_dim=64,
        width=case["width"],
        learning_rate=2e-4,
        grad_sample_mode=case["mode"],
        device=device,
    )
    rate = batch / patients
    plan = TrainingPlan(
        mechanism=Mechanism(1.0, rate, steps) if case["dp"] else None,
        max_grad_norm=1.0,
        batch_size=batch,
        steps=steps,
        accountant="rdp",
        seed=1,
    )
    baseline_mb = peak_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    stamps: list[float] = []

    def tick(_: StepReport) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        backend.train(data, plan, checkpoints=FileCheckpointer(Path(folder), every_seconds=1e9), on_step=tick)
    times = [b - a for a, b in zip([start, *stamps[:-1]], stamps, strict=True)][WARMUP:]
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mb() - baseline_mb
    labels = torch.arange(64) % len(DEFAULT_CLASSES)
    backend.sample(labels.numpy(), seed=0, batch_size=8)  # warm-up
    began = time.perf_counter()
    backend.sample(labels.numpy(), seed=1, batch_size=8)
    per_second = 64 / (time.perf_counter() - began)
    return {
        **case,
        "device": device.type,
        "step_s_median": round(statistics.median(times), 4),
        "measured_steps": len(times),
        "peak_memory_mb": round(peak, 1),
        "sample_volumes_per_s": round(per_second, 1),
    }


def _lesionstats(case: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch

    from shared.classes import DEFAULT_CLASSES
    from shared.foundation.artefact import load_foundation
    from shared.foundation.files import foundation_sha256
    from shared.foundation.shipped import SHIPPED_FOUNDATION
    from shared.privacy import Mechanism
    from site_agent.generator.backend import TrainingPlan, TrainingSet
    from site_agent.generator.checkpoints import FileCheckpointer
    from site_agent.generator.lesionstats.backend import FoundationLesionStatistics

    device = torch.device("cpu")  # the release is arithmetic on a few numbers per patient
    foundation = load_foundation(SHIPPED_FOUNDATION)
    box, patients = foundation.spec.box, case["patients"]
    rng = np.random.default_rng(0)
    volumes = rng.uniform(-1, 1, (patients, 2, *box)).astype(np.float32)
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in box), indexing="ij"))
    labels = np.arange(patients) % len(DEFAULT_CLASSES)
    for k in range(patients):  # a ball of 3-6 voxels' radius somewhere inside the box; normal: none
        centre = rng.uniform(0.3, 0.7, 3) * np.array(box)
        ball = ((grid - centre[:, None, None, None]) ** 2).sum(0) < rng.uniform(3, 6) ** 2
        volumes[k, 1] = np.where(ball & (labels[k] != 0), 1.0, -1.0)
    data = TrainingSet(
        volumes=torch.from_numpy(volumes), labels=torch.from_numpy(labels), classes=DEFAULT_CLASSES
    )
    plan = TrainingPlan(
        mechanism=Mechanism(1.0, 1.0, 1) if case["dp"] else None,
        max_grad_norm=1.0,
        batch_size=patients,
        steps=1,
        accountant="rdp",
        seed=1,
    )
    sha256 = foundation_sha256(SHIPPED_FOUNDATION)
    baseline_mb = peak_rss_mb()
    times = []
    for _ in range(case["steps"]):
        backend = FoundationLesionStatistics(
            foundation=foundation,
            foundation_sha256=sha256,
            classes=DEFAULT_CLASSES,
            box=box,
            sampling_steps=50,
            device=device,
        )
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            backend.train(
                data,
                plan,
                checkpoints=FileCheckpointer(Path(folder), every_seconds=1e9),
                on_step=lambda _r: None,
            )
            times.append(time.perf_counter() - start)
    drawn = np.arange(64) % len(DEFAULT_CLASSES)
    backend.sample(drawn, seed=0)  # warm-up
    began = time.perf_counter()
    backend.sample(drawn, seed=1)
    return {
        **case,
        "box": list(box),
        "device": device.type,
        "release_s_median": round(statistics.median(times[WARMUP:] or times), 4),
        "measured_releases": len(times[WARMUP:] or times),
        "peak_memory_mb": round(peak_rss_mb() - baseline_mb, 1),
        "sample_volumes_per_s": round(64 / (time.perf_counter() - began), 1),
    }


def _run_case(case: dict[str, Any]) -> dict[str, Any]:
    """One configuration in a process of its own, so that its peak memory is its own."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.generator", "--case", json.dumps(case)],
        capture_output=True,
        text=True,
        check=True,
    )
    row: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=6, help="measured steps per configuration")
    parser.add_argument("--quick", action="store_true", help="the CPU box only")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        case = json.loads(args.case)
        print(json.dumps(_lesionstats(case) if case.get("backend") == "lesionstats" else _one(case)))
        return

    import torch

    gpu = torch.cuda.is_available()
    from shared.crop_box import CPU_BOX, GPU_BOX, box_text

    sizes = [(CPU_BOX, 8, 8)] if args.quick or not gpu else [(CPU_BOX, 32, 16), (GPU_BOX, 8, 16)]
    results = []
    for box, batch, width in sizes:
        for dp, mode in [(False, "hooks"), (True, "hooks"), (True, "functorch")]:
            case = {
                "box": list(box),
                "batch": batch,
                "width": width,
                "dp": dp,
                "mode": mode,
                "steps": args.steps + WARMUP,
            }
            row = _run_case(case)
            results.append(row)
            print(
                f"{box_text(box)} batch {batch} {'DP ' + mode if dp else 'non-private'}: step "
                f"{row['step_s_median']:.3f} s, peak {row['peak_memory_mb']:.0f} MB, "
                f"{row['sample_volumes_per_s']:.1f} samples/s",
                flush=True,
            )
    ratios = {}
    for box, _, _ in sizes:
        rows = {(r["dp"], r["mode"]): r for r in results if r["box"] == list(box)}
        plain = rows[(False, "hooks")]
        for mode in ("hooks", "functorch"):
            private = rows[(True, mode)]
            ratios[f"{box_text(box)} DP {mode} / non-private step time"] = round(
                private["step_s_median"] / plain["step_s_median"], 2
            )
            ratios[f"{box_text(box)} DP {mode} / non-private peak memory"] = round(
                private["peak_memory_mb"] / max(plain["peak_memory_mb"], 1.0), 2
            )
    released = {}
    for dp in (False, True):
        case = {"backend": "lesionstats", "patients": 64, "dp": dp, "steps": args.steps + WARMUP}
        row = _run_case(case)
        released[dp] = row
        results.append(row)
        print(
            f"lesionstats, {row['patients']} patients, {'DP' if dp else 'non-private'}: release "
            f"{row['release_s_median']:.3f} s, peak {row['peak_memory_mb']:.0f} MB, "
            f"{row['sample_volumes_per_s']:.1f} samples/s",
            flush=True,
        )
    ratios["lesionstats DP / non-private release time"] = round(
        released[True]["release_s_median"] / released[False]["release_s_median"], 2
    )
    for name, value in ratios.items():
        print(f"{name}: {value}x")
    path = write_result(
        "generator-cuda" if gpu else "generator",
        {
            "note": "dpgan3d: one step = one DP discriminator update (real Poisson batch + as many "
            "fakes) and one generator update; median over measured steps after warm-up. lesionstats: "
            "one release (every patient's lesion features, then the Gaussian mechanism or the exact "
            "sums), median over measured releases after warm-up",
            "configurations": results,
            "ratios": ratios,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
