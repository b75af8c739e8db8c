"""Every defect `--defects` promises is in the files, as defects.csv describes it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.errors import InvalidDicomError
from pydicom.uid import MRImageStorage

from shared.phantom import PhantomSummary
from shared.phantom.defects import DEFECTS, GANTRY_TILT_DEGREES


def _datasets(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(f) for f in sorted(folder.iterdir())]


def _folder(site: PhantomSummary, defect: str) -> Path:
    with (site.out / "defects.csv").open() as fh:
        rows = {r["defect"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(DEFECTS)
    assert all(r["detail"] and r["expected"] and r["study_uid"] for r in rows.values())
    return site.out / rows[defect]["folder"]


def test_missing_slice(phantom_site: PhantomSummary) -> None:
    z = sorted(float(d.ImagePositionPatient[2]) for d in _datasets(_folder(phantom_site, "missing_slice")))
    steps = np.round(np.diff(z), 3)
    spacing = np.median(steps)
    assert list(steps).count(2 * spacing) == 1
    assert all(s in (spacing, 2 * spacing) for s in steps)


def test_duplicate_slice(phantom_site: PhantomSummary) -> None:
    datasets = _datasets(_folder(phantom_site, "duplicate_slice"))
    positions = [tuple(map(float, d.ImagePositionPatient)) for d in datasets]
    assert len(positions) - len(set(positions)) == 1
    assert len({d.SOPInstanceUID for d in datasets}) == len(datasets)


def test_two_series_in_one_folder(phantom_site: PhantomSummary) -> None:
    datasets = _datasets(_folder(phantom_site, "two_series"))
    series = {d.SeriesInstanceUID: (int(d.SeriesNumber), d.ConvolutionKernel) for d in datasets}
    assert len(series) == 2
    assert len({d.StudyInstanceUID for d in datasets}) == 1
    assert sorted(n for n, _ in series.values()) == [2, 3]
    assert len({k for _, k in series.values()}) == 2


def test_non_ct_object(phantom_site: PhantomSummary) -> None:
    datasets = _datasets(_folder(phantom_site, "non_ct"))
    assert {d.Modality for d in datasets} == {"MR"}
    assert {d.SOPClassUID for d in datasets} == {MRImageStorage}


def test_truncated_file(phantom_site: PhantomSummary) -> None:
    broken = 0
    for f in _folder(phantom_site, "truncated_file").iterdir():
        try:
            ds = pydicom.dcmread(f)
            ds.pixel_array  # noqa: B018 - decoding is the check
        except (InvalidDicomError, ValueError, EOFError, OSError):
            broken += 1
    assert broken == 1


def test_gantry_tilt(phantom_site: PhantomSummary) -> None:
    datasets = _datasets(_folder(phantom_site, "gantry_tilt"))
    d = datasets[0]
    assert float(d.GantryDetectorTilt) == pytest.approx(GANTRY_TILT_DEGREES)
    row, col = np.array(d.ImageOrientationPatient[:3], float), np.array(d.ImageOrientationPatient[3:], float)
    normal = np.cross(row, col)
    z = sorted((np.array(x.ImagePositionPatient, float) for x in datasets), key=lambda p: p[2])
    stacking = (z[-1] - z[0]) / np.linalg.norm(z[-1] - z[0])
    angle = np.degrees(np.arccos(abs(float(normal @ stacking))))
    assert angle == pytest.approx(GANTRY_TILT_DEGREES, abs=0.1)
