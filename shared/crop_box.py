"""The box every case is cropped to: its sizes and the rule its edges follow.

Kept apart from the preprocessing steps (which import torch and MONAI) so that settings and
schemas can check a box without loading them.
"""

from __future__ import annotations

from shared.errors import FedsynthError

Box = tuple[int, int, int]
# One physical box, 192 x 192 x 256 mm (right-left, front-back, foot-head), at two resolutions:
# tall enough for thoracic inlet to diaphragm (about 250 mm), wide and deep enough for both
# paravertebral gutters and the sternum. Every edge halves at least three times (networks downsample).
GPU_BOX, GPU_SPACING_MM = (96, 96, 128), 2.0
CPU_BOX, CPU_SPACING_MM = (48, 48, 64), 4.0
BOX_MULTIPLE = 8


def check_box(box: Box) -> Box:
    """A box the networks can take: three edges of 16 to 512 voxels, each a multiple of 8."""
    if len(box) != 3 or any(not 16 <= n <= 512 or n % BOX_MULTIPLE for n in box):
        raise ValueError(
            f"box must be three edges (x, y, z voxels) of 16 to 512, each a multiple of {BOX_MULTIPLE}; "
            f"got {list(box)}"
        )
    return (int(box[0]), int(box[1]), int(box[2]))


def box_mm(box: Box, spacing_mm: float) -> tuple[float, float, float]:
    """The box's extent in millimetres (x, y, z)."""
    return box[0] * spacing_mm, box[1] * spacing_mm, box[2] * spacing_mm


def box_text(box: Box) -> str:
    """How messages write a box: 48x48x64."""
    return "x".join(str(n) for n in box)


def parse_box(text: str) -> Box:
    """A box as a command line gives it: "48,48,64" or "48x48x64"."""
    parts = text.replace("x", ",").split(",")
    try:
        return check_box(tuple(int(p) for p in parts))  # type: ignore[arg-type]
    except ValueError as exc:
        raise FedsynthError(f"--box {text!r}: {exc}") from None
