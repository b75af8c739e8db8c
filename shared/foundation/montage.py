"""A montage of drawn (or real) boxes: axial and coronal slices through each box's lesion (its
centre when it has none), radiological convention, lesion masks outlined in red."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray

from shared.three_views import OUTLINE_COLOUR, axial, coronal


def _through_lesion(mask: NDArray[np.uint8]) -> tuple[int, int]:
    """The coronal and axial planes with the most lesion voxels, or the box's centre planes."""
    if not mask.any():
        return mask.shape[1] // 2, mask.shape[2] // 2
    return int(mask.sum((0, 2)).argmax()), int(mask.sum((0, 1)).argmax())


def save_drawn_montage(
    images: NDArray[np.float32],
    masks: NDArray[np.uint8],
    title: str,
    path: Path,
    *,
    row_names: list[str] | None = None,
    per_row: int = 8,
) -> None:
    """Boxes in rows of `per_row`; each shows an axial slice above a coronal one."""
    count = len(images)
    rows = int(np.ceil(count / per_row))
    fig, axes = plt.subplots(2 * rows, per_row, figsize=(per_row * 1.5, rows * 3.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for n in range(count):
        r, c = divmod(n, per_row)
        y, z = _through_lesion(masks[n])
        for k, (cut, at) in enumerate(((axial, z), (coronal, y))):
            ax = axes[2 * r + k, c]
            ax.imshow(cut(images[n], at), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            outline = cut(masks[n], at)
            if outline.any():
                ax.contour(outline, levels=[0.5], colors=OUTLINE_COLOUR, linewidths=0.7)
        if row_names and c == 0:
            axes[2 * r, 0].set_title(row_names[r], fontsize=7, loc="left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
