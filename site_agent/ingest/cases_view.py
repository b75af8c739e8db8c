"""Pictures of a stored case for the site's own review: three orthogonal slices through the box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from shared.crop_box import box_text
from shared.three_views import Plane, axial, coronal, sagittal, save_three_views
from site_agent.ingest.store import CaseRecord


def write_case_png(
    record: CaseRecord, image: NDArray[np.float32], mask: NDArray[np.uint8] | None, path: Path
) -> None:
    """Axial, coronal and sagittal slices through the centre of a RAS box, radiological convention."""
    cx, cy, cz = (n // 2 for n in image.shape)
    planes = [
        Plane("axial", axial(image, cz), None if mask is None else axial(mask, cz)),
        Plane("coronal", coronal(image, cy), None if mask is None else coronal(mask, cy)),
        Plane("sagittal", sagittal(image, cx), None if mask is None else sagittal(mask, cx)),
    ]
    title = (
        f"{record.case_id} v{record.version}: {record.label or 'unlabelled'}, {record.split}; "
        f"{box_text(record.shape)} voxels at {record.spacing_mm:g} mm"
    )
    save_three_views(planes, title, path, window=(-1.0, 1.0), width=10.0, dpi=90)
