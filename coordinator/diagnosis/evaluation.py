"""`coordinator model evaluate`: a model scored on a labelled dataset folder, with plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from shared.crop_box import box_text
from shared.devices import choose_device
from shared.diagnosis.bundle import load_model
from shared.diagnosis.dataset import load_dataset
from shared.diagnosis.metrics import roc_curve
from shared.diagnosis.model_files import ModelError, model_sha256
from shared.diagnosis.report import evaluation_report


def evaluate_model(model_dir: Path, dataset_dir: Path, *, plots: Path | None = None) -> dict[str, Any]:
    device = choose_device("auto")
    model = load_model(model_dir, device=device)
    data = load_dataset(dataset_dir)
    if data.card.classes != model.classes:
        raise ModelError(
            f"the model's classes {list(model.classes)} differ from the dataset's {list(data.card.classes)}"
        )
    if tuple(data.images.shape[1:]) != model.box:
        raise ModelError(
            f"the model takes {box_text(model.box)} boxes, the dataset holds "
            f"{box_text(tuple(data.images.shape[1:]))}"  # type: ignore[arg-type]
        )
    probabilities = model.probabilities(data.images, device=device)
    masks = model.lesion_masks(data.images, device=device) if model.segmenter is not None else None
    report = evaluation_report(
        probabilities,
        data.labels,
        model.classes,
        predicted_masks=masks,
        true_masks=data.masks > 0 if masks is not None else None,
    )
    report = {
        "schema_id": "fedsynth.evaluation/1",
        "model_sha256": model_sha256(model_dir),
        "model_task": model.metadata["task"],
        "dataset_id": data.card.dataset_id,
        "dataset_version": data.card.version,
        **report,
    }
    if plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
        _roc_plot(probabilities, data.labels, model.classes, report, plots / "roc.png")
        _confusion_plot(np.asarray(report["confusion"]), model.classes, plots / "confusion.png")
    return report


def _roc_plot(
    probabilities: np.ndarray, truth: np.ndarray, classes: tuple[str, ...], report: dict[str, Any], path: Path
) -> None:
    fig, ax = plt.subplots(figsize=(5.2, 5))
    for k, name in enumerate(classes):
        if not (truth == k).any():
            continue
        fpr, tpr = roc_curve(probabilities[:, k], truth == k)
        value = report["per_class"][name]["auc"]["value"]
        shown = "n/a, too few cases" if value is None else f"{value:.2f}"
        ax.plot(fpr, tpr, label=f"{name.replace('_', ' ')} (AUC {shown}, n={int((truth == k).sum())})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    macro = report["macro_auc"]
    if macro["value"] is None:
        title = f"One-vs-rest ROC, macro AUC n/a ({macro.get('note')})"
    elif macro["ci95_low"] is None:
        title = f"One-vs-rest ROC, macro AUC {macro['value']:.3f}, {report['cases']} cases"
    else:
        title = (
            f"One-vs-rest ROC, macro AUC {macro['value']:.3f} [{macro['ci95_low']:.3f}, "
            f"{macro['ci95_high']:.3f}], {report['cases']} cases"
        )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _confusion_plot(matrix: np.ndarray, classes: tuple[str, ...], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(matrix, cmap="Blues")
    names = [c.replace("_", "\n") for c in classes]
    ax.set_xticks(range(len(classes)), names, fontsize=7)
    ax.set_yticks(range(len(classes)), names, fontsize=7)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            fontsize=8,
            color="black" if value < matrix.max() / 2 else "white",
        )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
