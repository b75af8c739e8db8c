"""The checks a series must pass before its pixels are read, each with its own reason.

A series that fails is refused whole, named by pseudonym, with the check that failed and, where
one file is to blame, that file's pseudonymous reference. Spacing comes from the slice positions
projected on the slice normal, never from SliceThickness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.dicom.scan import Instance, Series
from shared.errors import FedsynthError

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
POSITION_TOLERANCE_MM = 0.01
SPACING_TOLERANCE = 0.05  # fraction of the slice spacing two neighbours may deviate by
TILT_TOLERANCE_DEGREES = 0.5
# The largest matrix a slice may claim. CT is reconstructed at 512 or 1024, rarely 2048; a header
# that claims more is broken or hostile, and believing it would allocate gigabytes before a single
# pixel was read.
MAX_MATRIX = 4096


class SeriesRejected(FedsynthError):
    """A series failed one check. `check` is a short stable name; `detail` says what was found."""

    def __init__(
        self, check: str, detail: str, instance: Instance | None = None, others: tuple[Instance, ...] = ()
    ) -> None:
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.detail = detail
        self.instance = instance
        self.others = others  # more files that failed the same check (several truncated files)


@dataclass(frozen=True)
class Geometry:
    """A series that passed the checks: its slices in order along the normal, and its spacing."""

    instances: list[Instance]  # sorted from the first to the last position along the normal
    row_direction: np.ndarray  # unit vector along a row (increasing column index), LPS
    column_direction: np.ndarray  # unit vector down a column (increasing row index), LPS
    normal: np.ndarray
    pixel_spacing: tuple[float, float]  # (between rows, between columns), as DICOM orders it
    slice_spacing: float
    rows: int
    columns: int

    @property
    def origin(self) -> np.ndarray:
        return np.asarray(self.instances[0].position, dtype=np.float64)


def check_series(series: Series, *, min_slices: int) -> Geometry:
    instances = series.instances
    first = instances[0]
    for inst in instances:
        if inst.modality != "CT":
            raise SeriesRejected("modality", f"modality {inst.modality or 'missing'} is not CT", inst)
        if inst.sop_class == ENHANCED_CT_STORAGE or inst.frames > 1:
            raise SeriesRejected("multi-frame", "multi-frame (enhanced) CT is not supported yet", inst)
        if inst.sop_class != CT_IMAGE_STORAGE:
            raise SeriesRejected("sop-class", f"SOP class {inst.sop_class} is not CT Image Storage", inst)
        for name in ("position", "orientation", "pixel_spacing", "rows", "columns"):
            if getattr(inst, name) is None:
                raise SeriesRejected("missing-attribute", f"an instance has no usable {name}", inst)
        if not (0 < inst.rows <= MAX_MATRIX and 0 < inst.columns <= MAX_MATRIX):  # type: ignore[operator]
            raise SeriesRejected(
                "matrix", f"the header claims {inst.rows}x{inst.columns} pixels (at most {MAX_MATRIX})", inst
            )
    if len(instances) < min_slices:
        raise SeriesRejected(
            "too-few-slices", f"{len(instances)} slices, fewer than the {min_slices} required"
        )

    orientation = np.asarray(first.orientation, dtype=np.float64)
    for inst in instances:
        if not np.allclose(np.asarray(inst.orientation), orientation, atol=1e-4):
            raise SeriesRejected("orientation", "slices with different orientations in one series", inst)
        if (inst.rows, inst.columns) != (first.rows, first.columns):
            raise SeriesRejected("matrix", "slices of different sizes in one series", inst)
        if not np.allclose(inst.pixel_spacing or (0.0, 0.0), first.pixel_spacing or (0.0, 0.0), rtol=1e-4):
            raise SeriesRejected("pixel-spacing", "slices with different pixel spacing in one series", inst)
    row, column = orientation[:3], orientation[3:]
    if (
        abs(np.linalg.norm(row) - 1) > 1e-3
        or abs(np.linalg.norm(column) - 1) > 1e-3
        or abs(row @ column) > 1e-3
    ):
        raise SeriesRejected(
            "orientation", "ImageOrientationPatient is not two perpendicular unit vectors", first
        )
    normal = np.cross(row, column)
    if abs(normal[2]) < 0.9:
        raise SeriesRejected("not-axial", "slices are not axial (a sagittal or coronal reconstruction?)")

    positions = np.array([inst.position for inst in instances], dtype=np.float64)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    positions, along = positions[order], along[order]
    ordered = [instances[i] for i in order]

    steps = np.diff(along)
    duplicates = np.nonzero(steps < POSITION_TOLERANCE_MM)[0]
    if duplicates.size:
        twin = ordered[duplicates[0] + 1]
        raise SeriesRejected(
            "duplicate-slice", f"two instances at one slice position ({along[duplicates[0]]:.2f} mm)", twin
        )
    spacing = float(np.median(steps))

    stacking = positions[-1] - positions[0]
    stacking /= np.linalg.norm(stacking)
    tilt = float(np.degrees(np.arccos(min(1.0, abs(float(stacking @ normal))))))
    if tilt > TILT_TOLERANCE_DEGREES or abs(first.gantry_tilt) > TILT_TOLERANCE_DEGREES:
        shown = max(tilt, abs(first.gantry_tilt))
        raise SeriesRejected(
            "gantry-tilt", f"slices are tilted {shown:.1f} degrees from their stacking direction"
        )

    off = np.nonzero(np.abs(steps - spacing) > SPACING_TOLERANCE * spacing)[0]
    if off.size:
        gap = steps[off[0]]
        after = ordered[off[0]]
        missing = round(gap / spacing) - 1
        if missing >= 1 and abs(gap - (missing + 1) * spacing) <= SPACING_TOLERANCE * spacing:
            raise SeriesRejected(
                "missing-slice",
                f"{missing} slice(s) missing after position {along[off[0]]:.2f} mm "
                f"(gap of {gap:.2f} mm where slices are {spacing:.2f} mm apart)",
                after,
            )
        raise SeriesRejected(
            "uneven-spacing", f"slice spacing varies ({gap:.2f} mm where most are {spacing:.2f} mm)", after
        )

    return Geometry(
        instances=ordered,
        row_direction=row,
        column_direction=column,
        normal=normal,
        pixel_spacing=(float(first.pixel_spacing[0]), float(first.pixel_spacing[1])),  # type: ignore[index]
        slice_spacing=spacing,
        rows=int(first.rows),  # type: ignore[arg-type]
        columns=int(first.columns),  # type: ignore[arg-type]
    )
