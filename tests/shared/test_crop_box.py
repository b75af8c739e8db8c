"""The box every case is cropped to: both sizes hold the same millimetres, bad boxes are named."""

from __future__ import annotations

import pytest

from shared.crop_box import CPU_BOX, CPU_SPACING_MM, GPU_BOX, GPU_SPACING_MM, box_mm, parse_box
from shared.errors import FedsynthError


def test_the_cpu_and_gpu_boxes_hold_the_same_mediastinum() -> None:
    assert box_mm(CPU_BOX, CPU_SPACING_MM) == box_mm(GPU_BOX, GPU_SPACING_MM) == (192.0, 192.0, 256.0)
    assert box_mm(CPU_BOX, CPU_SPACING_MM)[2] >= 250  # thoracic inlet to diaphragm


def test_a_box_from_the_command_line_is_checked_and_named_when_wrong() -> None:
    assert parse_box("48,48,64") == parse_box("48x48x64") == (48, 48, 64)
    for bad in ("48,48", "48,48,60", "8,8,8", "a,b,c"):
        with pytest.raises(FedsynthError, match="--box"):
            parse_box(bad)
