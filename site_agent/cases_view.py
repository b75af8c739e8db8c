"""Pictures of a stored case for the site's own review: three orthogonal slices through the cube."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray

from site_agent.ingest.store import CaseRecord


def write_case_png(
    record: CaseRecord, image: NDArray[np.float32], mask: NDArray[np.uint8] | None, path: Path
) -> None:
    """Axial, coronal and sagittal slices through the centre of a RAS cube (head and front up)."""
    cx, cy, cz = (n // 2 for n in image.shape)
    views = [
        ("axial", image[:, :, cz].T, None if mask is None else mask[:, :, cz].T),
        ("coronal", image[:, cy, :].T, None if mask is None else mask[:, cy, :].T),
        ("sagittal", image[cx, :, :].T, None if mask is None else mask[cx, :, :].T),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.8))
    for ax, (name, plane, outline) in zip(axes, views, strict=True):
        ax.imshow(plane, cmap="gray", vmin=-1, vmax=1, origin="lower", interpolation="nearest")
        if outline is not None and outline.any():
            ax.contour(outline, levels=[0.5], colors="#ff3b30", linewidths=0.8)
        ax.set_title(name)
        ax.axis("off")
    label = record.label or "unlabelled"
    fig.suptitle(
        f"{record.case_id} v{record.version}: {label}, {record.split}; "
        f"{record.shape[0]}^3 voxels at {record.spacing_mm:g} mm",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
