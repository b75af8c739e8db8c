"""Pictures for a round's report: pooled samples by class and site, and the sites' metrics."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from shared.diagnosis.dataset import LoadedDataset
from shared.schemas import SiteMetricsReply
from shared.three_views import axial

PER_CLASS = 6


def _chosen(data: LoadedDataset, label: int) -> list[int]:
    """Up to PER_CLASS samples of a class, taken from the sites in turn, so every site shows."""
    of_class = np.flatnonzero(data.labels == label)
    if not data.sites:
        return [int(n) for n in of_class[:PER_CLASS]]
    by_site: dict[str, list[int]] = {}
    for n in of_class:
        by_site.setdefault(data.sites[n], []).append(int(n))
    queues = [by_site[site] for site in sorted(by_site)]
    chosen: list[int] = []
    while len(chosen) < PER_CLASS and any(queues):
        for queue in queues:
            if queue and len(chosen) < PER_CLASS:
                chosen.append(queue.pop(0))
    return chosen


def _lesion_slice(mask: np.ndarray) -> int:
    """The axial slice with the most lesion voxels, or the middle one without a lesion."""
    per_slice = mask.reshape(-1, mask.shape[-1]).sum(axis=0)
    return int(per_slice.argmax()) if per_slice.any() else mask.shape[-1] // 2


def save_montage(data: LoadedDataset, path: Path) -> None:
    """Up to six samples per class from the sites in turn, each at the axial slice through its
    lesion (the middle slice when it has none), lesion mask outlined."""
    classes = data.card.classes
    fig, axes = plt.subplots(len(classes), PER_CLASS, figsize=(PER_CLASS * 1.6, len(classes) * 1.7))
    for row, name in enumerate(classes):
        chosen = _chosen(data, row)
        for col in range(PER_CLASS):
            ax = axes[row, col]
            ax.axis("off")
            if col >= len(chosen):
                continue
            n = chosen[col]
            z = _lesion_slice(data.masks[n])
            ax.imshow(axial(data.images[n], z), cmap="gray", vmin=-1, vmax=1)
            if data.masks[n, :, :, z].any():
                ax.contour(axial(data.masks[n], z), levels=[0.5], colors="#ff3b30", linewidths=0.8)
            if data.sites:
                ax.set_title(data.sites[n], fontsize=7)
        axes[row, 0].text(
            -0.1, 0.5, name, transform=axes[row, 0].transAxes, ha="right", va="center", fontsize=8
        )
    fig.suptitle(
        f"{data.card.dataset_id} v{data.card.version}: synthetic samples, axial slice through each lesion"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_site_metrics(metrics: dict[str, SiteMetricsReply], path: Path) -> None:
    """Per-class AUC at each site, on its own held-out real cases, with bootstrap 95% intervals;
    a class with too few cases to estimate shows "n/a" and its count, never a bar at zero."""
    sites = sorted(metrics)
    classes = metrics[sites[0]].classes
    width = 0.8 / max(1, len(sites))
    fig, ax = plt.subplots(figsize=(10, 4.4))
    for k, site in enumerate(sites):
        figures = [metrics[site].per_class[c].auc for c in classes]
        x = np.arange(len(classes)) + k * width
        values = np.array([np.nan if f.value is None else f.value for f in figures])
        low = np.array([np.nan if f.ci95_low is None else f.ci95_low for f in figures])
        high = np.array([np.nan if f.ci95_high is None else f.ci95_high for f in figures])
        macro = metrics[site].macro_auc
        ax.bar(
            x,
            values,
            width,
            yerr=np.nan_to_num(np.vstack([values - low, high - values])),
            capsize=2,
            label=f"{site}: macro {_fmt(macro.value)}, {metrics[site].cases} cases",
        )
        for xi, f in zip(x, figures, strict=True):
            if f.value is None:
                ax.text(xi, 0.02, f"n/a\nn={f.cases}", ha="center", va="bottom", fontsize=6)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xticks(np.arange(len(classes)) + width * (len(sites) - 1) / 2, classes, rotation=20, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("AUC on the site's held-out real cases")
    ax.set_title("n/a: too few cases to estimate; bars: AUC with bootstrap 95% interval", fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
