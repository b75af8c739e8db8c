"""What a hospital looks at after training, before anything leaves: a montage and intensity figures.

Both stay in the run folder on site: the statistics of the real training cases beside the
synthetic ones are about patients.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from shared.three_views import axial
from site_agent.generator.backend import GeneratorBackend, TrainingSet

PER_CLASS = 4
MONTAGE = "montage.png"
STATS = "intensity_stats.json"


def write_review(backend: GeneratorBackend, *, data: TrainingSet, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    classes = data.classes
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), PER_CLASS)
    samples = backend.sample(labels, seed=0)
    _montage(samples.images, samples.masks, labels, classes, folder / MONTAGE)

    real_images = data.volumes[:, 0].numpy()
    real_masks = data.volumes[:, 1].numpy() > 0
    real_labels = data.labels.numpy()
    stats = {
        "note": "site-only review: statistics of real training cases are patient data; do not share",
        "scale": "window scaled to [-1, 1]",
        "classes": {
            name: {
                "synthetic": _summary(samples.images[labels == k], samples.masks[labels == k] > 0),
                "real": _summary(real_images[real_labels == k], real_masks[real_labels == k]),
            }
            for k, name in enumerate(classes)
        },
    }
    (folder / STATS).write_text(json.dumps(stats, indent=2) + "\n")


def _summary(images: np.ndarray, masks: np.ndarray) -> dict[str, float | int] | None:
    if len(images) == 0:
        return None
    p5, p50, p95 = np.percentile(images, [5, 50, 95])
    lesion = images[masks]
    return {
        "volumes": len(images),
        "mean": round(float(images.mean()), 4),
        "std": round(float(images.std()), 4),
        "p5": round(float(p5), 4),
        "median": round(float(p50), 4),
        "p95": round(float(p95), 4),
        "lesion_fraction": round(float(masks.mean()), 5),
        "lesion_mean": round(float(lesion.mean()), 4) if lesion.size else None,  # type: ignore[dict-item]
    }


def _montage(
    images: np.ndarray, masks: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], path: Path
) -> None:
    fig, axes = plt.subplots(len(classes), PER_CLASS, figsize=(PER_CLASS * 1.6, len(classes) * 1.7))
    for k, name in enumerate(classes):
        for j, index in enumerate(np.flatnonzero(labels == k)[:PER_CLASS]):
            ax = axes[k, j]
            middle = images.shape[3] // 2  # axial slice through the box's centre (RAS: last axis is S)
            ax.imshow(axial(images[index], middle), cmap="gray", vmin=-1, vmax=1)
            if masks[index, :, :, middle].any():
                ax.contour(axial(masks[index], middle), levels=[0.5], colors="red", linewidths=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name.replace("_", " "), fontsize=7)
    fig.suptitle("synthetic samples, axial centre slice (site-only review)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
