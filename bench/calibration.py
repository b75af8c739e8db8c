"""Is the phantom hard enough? Train on the training sites' phantoms, score on the external site.

    python -m bench.calibration [--per-class 60] [--external-per-class 20] [--epochs 60] [--jobs 2]

Builds phantom datasets through the same preprocessing a site applies (32^3 at 4 mm): the four
training profiles with `per-class` cases of each class in all, and the external profile. Trains
the diagnostic classifier on the first (CPU), scores it on the second, and records macro AUC with
its bootstrap interval into bench/results/calibration.json. The target band is 0.75 to 0.95: near 1
the phantom would be too easy for the synthetic-versus-real comparison to mean anything.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import write_result
from coordinator.diagnosis.evaluation import evaluate_model
from coordinator.diagnosis.phantom_dataset import PhantomDatasetRequest, write_phantom_dataset
from coordinator.diagnosis.training import TrainOptions, train_model
from shared.phantom.profiles import TRAINING_PROFILES

BAND = (0.75, 0.95)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument(
        "--per-class", type=int, default=60, help="training cases per class, all sites together"
    )
    parser.add_argument("--external-per-class", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the datasets and the model in this folder (datasets already there are reused)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        started = time.perf_counter()
        per_site = args.per_class * 6 // len(TRAINING_PROFILES)
        train, external = root / "train", root / "external"
        if not train.exists():
            write_phantom_dataset(
                PhantomDatasetRequest(
                    out=train,
                    cases=per_site,
                    seed=args.seed,
                    profiles=tuple(TRAINING_PROFILES),
                    jobs=args.jobs,
                )
            )
        if not external.exists():
            write_phantom_dataset(
                PhantomDatasetRequest(
                    out=external,
                    cases=args.external_per_class * 6,
                    seed=args.seed + 1,
                    profiles=("external",),
                    jobs=args.jobs,
                )
            )
        made = time.perf_counter()
        print(f"datasets written in {made - started:.0f} s", flush=True)

        def show(report: object) -> None:
            print(report, flush=True)

        shutil.rmtree(root / "model", ignore_errors=True)
        model = train_model(train, root / "model", TrainOptions(task="classify", epochs=args.epochs), show)
        trained = time.perf_counter()
        report = evaluate_model(root / "model", external)
        internal = model.metadata.get("metrics", {})
    macro = report["macro_auc"]
    verdict = "in band" if BAND[0] <= macro["value"] <= BAND[1] else "OUT OF BAND"
    low, high = macro["ci95_low"], macro["ci95_high"]
    print(f"external macro AUC {macro['value']:.3f} [{low:.3f}, {high:.3f}]: {verdict}")
    write_result(
        "calibration",
        {
            "band": BAND,
            "training_dataset": model.metadata["training"]["dataset_id"],
            "external_dataset": report["dataset_id"],
            "training_cases": model.metadata["training"]["cases"]
            + model.metadata["training"]["validation_cases"],
            "external_cases": report["cases"],
            "cube": "32^3 at 4 mm",
            "epochs_run": model.metadata["training"]["epochs_run"],
            "internal_validation": internal,
            "external_macro_auc": macro,
            "external_accuracy": report["accuracy"],
            "external_balanced_accuracy": report["balanced_accuracy"],
            "external_per_class_auc": {k: v["auc"] for k, v in report["per_class"].items()},
            "external_confusion": report["confusion"],
            "verdict": verdict,
            "seconds": {"datasets": round(made - started), "training": round(trained - made)},
        },
    )


if __name__ == "__main__":
    main()
