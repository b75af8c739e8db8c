"""One picture of a volume for a person to check: axial, coronal and sagittal planes side by side.

Every view follows radiological convention: axial slices are seen from the feet (the patient's
right on the image's left, anterior up), coronal ones from the front (head up, the patient's right
on the left), sagittal ones from the patient's left (head up, anterior on the left). `axial`,
`coronal` and `sagittal` cut those planes out of a box in RAS order (x towards the patient's right,
y anterior, z superior), as every stored case and synthetic volume is, ready to draw with row 0
at the top.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray

OUTLINE_COLOUR = "#ff3b30"


def axial(volume: NDArray[np.generic], z: int) -> NDArray[np.generic]:
    """Slice `z` of a RAS box as seen from the feet: anterior up, the patient's right on the left."""
    return volume[::-1, ::-1, z].T


def coronal(volume: NDArray[np.generic], y: int) -> NDArray[np.generic]:
    """Plane `y` of a RAS box as seen from the front: head up, the patient's right on the left."""
    return volume[::-1, y, ::-1].T


def sagittal(volume: NDArray[np.generic], x: int) -> NDArray[np.generic]:
    """Plane `x` of a RAS box as seen from the patient's left: head up, anterior on the left."""
    return volume[x, ::-1, ::-1].T


@dataclass(frozen=True)
class Plane:
    name: str
    image: NDArray[np.generic]  # as it should appear: row 0 at the top unless `origin_lower`
    outline: NDArray[np.generic] | None = None  # mask drawn as a red contour
    aspect: float = 1.0


def save_three_views(
    planes: list[Plane],
    title: str,
    path: Path,
    *,
    window: tuple[float, float],
    origin_lower: bool = False,
    width: float = 12.0,
    dpi: int = 80,
) -> None:
    fig, axes = plt.subplots(1, len(planes), figsize=(width, width * 0.38))
    for ax, plane in zip(axes, planes, strict=True):
        ax.imshow(
            plane.image,
            cmap="gray",
            vmin=window[0],
            vmax=window[1],
            aspect=plane.aspect,
            origin="lower" if origin_lower else "upper",
            interpolation="nearest",
        )
        if plane.outline is not None and plane.outline.any():
            ax.contour(plane.outline, levels=[0.5], colors=OUTLINE_COLOUR, linewidths=0.8)
        ax.set_title(plane.name)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
