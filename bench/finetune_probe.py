"""One hospital's DP fine-tune of the public foundation, looked at and measured against its real
patients: does the synthetic CT carry each class's lesion?

    python -m bench.finetune_probe --foundation DIR --work DIR [--epsilon 8] [--profile site_a]

Builds (or reuses) the phantom hospital of `bench.utility --scale ci`, trains an `ldm3d` generator
on it through the real site code (`site-agent train`: plan, ledger, accountant), and draws boxes
of every class from it and from the foundation alone (its public row: the control that saw no
private data). Writes bench/results/finetune_probe.json (per class: lesion voxel share, where the
lesion's centre lies, its mean intensity, for real, fine-tuned and control boxes) and
bench/results/foundation/finetune-montage.png (per class: real, then fine-tuned, then control).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from bench.common import RESULTS, write_result
from bench.phantom_sites import build_site, copy_site, site_settings, store_items
from bench.synthetic_runs import SCALES, SEED
from shared.classes import DEFAULT_CLASSES
from shared.foundation.artefact import load_foundation
from shared.foundation.files import foundation_sha256
from shared.foundation.montage import save_drawn_montage
from shared.foundation.sampling import draw

PER_CLASS = 4


def _stats(images: NDArray[np.float32], masks: NDArray[np.uint8]) -> dict[str, Any]:
    share = masks.reshape(len(masks), -1).mean(1)
    centres = [np.argwhere(m).mean(0) for m in masks if m.any()]
    inside = [float(i[m > 0].mean()) for i, m in zip(images, masks, strict=True) if m.any()]
    return {
        "boxes": len(images),
        "with_lesion": int(sum(1 for m in masks if m.any())),
        "lesion_share_median": round(float(np.median(share)), 5),
        "lesion_centre_voxel_median": [round(float(v), 1) for v in np.median(centres, 0)]
        if centres
        else None,
        "lesion_intensity_median": round(float(np.median(inside)), 3) if inside else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--foundation", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--profile", default="site_a")
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--epochs", type=float, default=50.0)
    parser.add_argument("--batch", type=int, default=36)
    parser.add_argument("--trainable", default="conditioning")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--samples", type=int, default=12, help="Boxes drawn per class.")
    args = parser.parse_args()
    scale = SCALES["ci"]
    say = lambda m: print(m, flush=True)  # noqa: E731
    sha = foundation_sha256(args.foundation)
    base = build_site(args.work / "sites", args.profile, scale.site, seed=SEED, say=say)
    name = f"{args.profile}-ldm3d-eps{args.epsilon:g}-{args.trainable}"
    home = copy_site(base, args.work / "finetune" / name)
    settings = site_settings(home, scale.site)
    settings = settings.model_copy(
        update={
            "generator": settings.generator.model_copy(
                update={
                    "backend": "ldm3d",
                    "foundation": args.foundation.resolve(),
                    "foundation_sha256": sha,
                    "trainable": args.trainable,
                    "learning_rate": args.learning_rate,
                    "draws_per_patient": args.draws,
                    "batch_size": args.batch,
                    "epochs": args.epochs,
                }
            )
        }
    )
    from site_agent.generator.registry import load_backend
    from site_agent.generator.training_run import train_generator

    started = time.perf_counter()
    last = [0.0]

    def progress(report: Any, epsilon: float) -> None:
        if time.perf_counter() - last[0] > 30 or report.step == report.steps:
            last[0] = time.perf_counter()
            loss = report.losses["denoise"]
            say(f"step {report.step}/{report.steps}, epsilon {epsilon:.2f}, loss {loss:.4f}")

    run = train_generator(settings, epsilon=args.epsilon, round_id="probe", progress=progress)
    train_s = time.perf_counter() - started
    backend = load_backend("ldm3d", settings.paths.models / run.run_id, torch.device("cpu"))
    real = store_items(settings, "train")
    foundation = load_foundation(args.foundation, sha256=sha)
    rows, names, per_class = [], [], {}
    images: list[NDArray[np.float32]] = []
    masks: list[NDArray[np.uint8]] = []
    for k, cls in enumerate(DEFAULT_CLASSES):
        ri = np.stack([i.image for i in real if i.label == cls])
        rm = np.stack([i.mask for i in real if i.label == cls])
        tuned = backend.sample(np.full(args.samples, k, dtype=np.int64), seed=SEED + k)
        control = draw(
            foundation.spec,
            foundation.autoencoder,
            foundation.denoiser,
            foundation.scale_factor,
            np.full(args.samples, foundation.spec.public_class, dtype=np.int64),
            seed=SEED + k,
        )
        per_class[cls] = {
            "real": _stats(ri, rm),
            "fine_tuned": _stats(tuned.images, tuned.masks),
            "foundation_only": _stats(control.images, control.masks),
        }
        for source, (im, ma) in (
            ("real", (ri, rm)),
            ("fine-tuned", (tuned.images, tuned.masks)),
            ("foundation only", (control.images, control.masks)),
        ):
            images.extend(im[:PER_CLASS])
            masks.extend(ma[:PER_CLASS])
            names.append(f"{cls}: {source}")
        rows.append(cls)
        say(f"{cls}: {per_class[cls]}")
    save_drawn_montage(
        np.stack(images),
        np.stack(masks),
        f"{args.profile}, ldm3d at epsilon {run.privacy.epsilon:.2f} ({args.trainable}): per class, "
        "real / fine-tuned / foundation only",
        RESULTS / "foundation" / "finetune-montage.png",
        row_names=names,
        per_row=PER_CLASS,
    )
    write_result(
        "finetune_probe",
        {
            "command": "python -m bench.finetune_probe "
            + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
            "foundation": {"id": foundation.card.foundation_id, "sha256": sha},
            "site": args.profile,
            "patients": run.patients,
            "epsilon_spent": None if math.isinf(run.privacy.epsilon) else round(run.privacy.epsilon, 3),
            "delta": run.privacy.delta,
            "noise_multiplier": run.privacy.noise_multiplier,
            "steps": run.privacy.steps,
            "train_s": round(train_s, 1),
            "per_class": per_class,
        },
    )
    say(f"wrote {RESULTS / 'finetune_probe.json'} and {RESULTS / 'foundation' / 'finetune-montage.png'}")


if __name__ == "__main__":
    main()
