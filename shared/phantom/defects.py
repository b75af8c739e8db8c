"""The broken inputs hospitals really send, written on purpose so ingestion can be tested on them.

Each defect is one study folder built from an ordinary phantom study and listed in defects.csv with
what is wrong and what a correct ingester should do about it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from scipy import ndimage

from shared.phantom.dicom_io import SeriesSpec, spec_for_study, write_series
from shared.phantom.study import Study, make_uid

GANTRY_TILT_DEGREES = 15.0


@dataclass(frozen=True)
class DefectRecord:
    folder: str
    study_uid: str
    defect: str
    detail: str
    expected: str


def _write(study: Study, folder: Path, spec: SeriesSpec, **kwargs: object) -> list[Path]:
    return write_series(folder, spec, study.identity, study.profile, contrast=study.body.contrast, **kwargs)  # type: ignore[arg-type]


def missing_slice(study: Study, folder: Path) -> DefectRecord:
    spec = spec_for_study(study)
    k = spec.hu.shape[0] // 2
    z = spec.positions[k][2]
    spec.hu = np.delete(spec.hu, k, axis=0)
    spec.positions = spec.positions[:k] + spec.positions[k + 1 :]
    _write(study, folder, spec)
    return DefectRecord(
        folder.name,
        study.identity.study_uid,
        "missing_slice",
        f"the slice at z = {z:.2f} mm is missing; the others are {study.grid.spacing[2]:g} mm apart",
        "reject the series: gap in slice positions",
    )


def duplicate_slice(study: Study, folder: Path) -> DefectRecord:
    paths = _write(study, folder, spec_for_study(study))
    source = paths[len(paths) // 2]
    ds = pydicom.dcmread(source)
    uid = make_uid("duplicate", study.identity.series_uid)
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    target = folder / f"{source.stem}_copy{source.suffix}"
    ds.save_as(target, enforce_file_format=True)
    return DefectRecord(
        folder.name,
        study.identity.study_uid,
        "duplicate_slice",
        f"instance {ds.InstanceNumber} appears twice at z = {float(ds.ImagePositionPatient[2]):.2f} mm "
        "under two SOP Instance UIDs",
        "reject the series: two instances at one slice position",
    )


def two_series(study: Study, folder: Path) -> DefectRecord:
    soft = spec_for_study(study)
    _write(study, folder, soft)
    blurred = ndimage.gaussian_filter(study.hu.astype(np.float32), sigma=(0, 1.5, 1.5))
    sharp = np.clip(study.hu + 1.5 * (study.hu - blurred), -1024, 3071).astype(np.int16)
    lung = dataclasses.replace(
        soft,
        hu=sharp,
        series_uid=make_uid("lung-series", study.identity.series_uid),
        series_number=3,
        description="CHEST LUNG",
        kernel=study.profile.lung_kernel,
    )
    _write(study, folder, lung, first_counter=soft.hu.shape[0] + 1)
    return DefectRecord(
        folder.name,
        study.identity.study_uid,
        "two_series",
        f"two series of one study in one folder: series 2 ({study.profile.kernel}, soft tissue) "
        f"and series 3 ({study.profile.lung_kernel}, lung)",
        "keep the series apart; use series 2 (soft-tissue kernel), skip series 3",
    )


def non_ct(study: Study, folder: Path) -> DefectRecord:
    spec = spec_for_study(
        study, modality="MR", description="T1 CHEST", series_uid=make_uid("mr", study.identity.series_uid)
    )
    spec.hu = np.clip(study.hu.astype(np.int32) + 1024, 0, 4095).astype(
        np.int16
    )  # MR-like positive intensities
    _write(study, folder, spec)
    return DefectRecord(
        folder.name,
        study.identity.study_uid,
        "non_ct",
        "the only series is an MR Image Storage series (Modality MR)",
        "reject the series: modality MR is not CT",
    )


def truncated_file(study: Study, folder: Path) -> DefectRecord:
    paths = _write(study, folder, spec_for_study(study))
    victim = paths[len(paths) // 3]
    data = victim.read_bytes()
    victim.write_bytes(data[: int(len(data) * 0.6)])
    return DefectRecord(
        folder.name,
        study.identity.study_uid,
        "truncated_file",
        f"file {victim.name} is cut off at 60% of its length (pixel data incomplete)",
        "reject the series (or the file) without crashing: unreadable pixel data",
    )


def gantry_tilt(study: Study, folder: Path) -> DefectRecord:
    t = np.deg2rad(GANTRY_TILT_DEGREES)
    g = study.grid
    nz, ny, nx = g.shape
    k, i, j = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij", sparse=True)
    # Rows of a tilted slice run backwards and downwards: column direction (0, cos t, -sin t).
    coords = [k - i * g.spacing[1] * np.sin(t) / g.spacing[2], i * np.cos(t) + 0 * k, j + 0 * k]
    coords = [np.broadcast_to(c, (nz, ny, nx)) for c in coords]
    tilted = ndimage.map_coordinates(study.hu.astype(np.float32), coords, order=1, cval=-1024.0)
    spec = spec_for_study(
        study,
        orientation=(1.0, 0.0, 0.0, 0.0, float(np.cos(t)), float(-np.sin(t))),
        gantry_tilt=GANTRY_TILT_DEGREES,
    )
    spec.hu = np.rint(tilted).astype(np.int16)
    _write(study, folder, spec)
    return DefectRecord(
        folder.name,
        study.identity.study_uid,
        "gantry_tilt",
        f"acquired with a {GANTRY_TILT_DEGREES:g} degree gantry tilt: slices are not perpendicular "
        "to the direction they are stacked in",
        "reject the series, or resample it onto an orthogonal grid before use",
    )


DEFECTS: dict[str, Callable[[Study, Path], DefectRecord]] = {
    "missing_slice": missing_slice,
    "duplicate_slice": duplicate_slice,
    "two_series": two_series,
    "non_ct": non_ct,
    "truncated_file": truncated_file,
    "gantry_tilt": gantry_tilt,
}
