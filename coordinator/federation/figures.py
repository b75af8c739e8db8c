"""Pictures for a round's report: pooled samples by class and site, and the sites' metrics."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from shared.diagnosis.dataset import LoadedDataset
from shared.schemas import SiteMetricsReply

PER_CLASS = 6


def save_montage(data: LoadedDataset, path: Path) -> None:
    """Middle axial slice of up to six samples per class, lesion mask outlined."""
    classes = data.card.classes
    fig, axes = plt.subplots(len(classes), PER_CLASS, figsize=(PER_CLASS * 1.6, len(classes) * 1.7))
    for row, name in enumerate(classes):
        chosen = np.flatnonzero(data.labels == row)[:PER_CLASS]
        for col in range(PER_CLASS):
            ax = axes[row, col]
            ax.axis("off")
            if col >= len(chosen):
                continue
            n = chosen[col]
            z = data.images.shape[-1] // 2
            ax.imshow(data.images[n, :, :, z].T, cmap="gray", vmin=-1, vmax=1, origin="lower")
            if data.masks[n, :, :, z].any():
                ax.contour(data.masks[n, :, :, z].T, levels=[0.5], colors="#ff3b30", linewidths=0.8)
            if data.sites:
                ax.set_title(data.sites[n], fontsize=7)
        axes[row, 0].text(
            -0.1, 0.5, name, transform=axes[row, 0].transAxes, ha="right", va="center", fontsize=8
        )
    fig.suptitle(f"{data.card.dataset_id} v{data.card.version}: synthetic samples (middle axial slice)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_site_metrics(metrics: dict[str, SiteMetricsReply], path: Path) -> None:
    """Per-class AUC at each site, on its own held-out real cases."""
    sites = sorted(metrics)
    classes = metrics[sites[0]].classes
    width = 0.8 / max(1, len(sites))
    fig, ax = plt.subplots(figsize=(10, 4))
    for k, site in enumerate(sites):
        values = [metrics[site].per_class[c].auc for c in classes]
        x = np.arange(len(classes)) + k * width
        ax.bar(
            x,
            [np.nan if v is None else v for v in values],
            width,
            label=f"{site} (macro {_fmt(metrics[site].macro_auc)})",
        )
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xticks(np.arange(len(classes)) + width * (len(sites) - 1) / 2, classes, rotation=20, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("AUC on the site's held-out real cases")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
