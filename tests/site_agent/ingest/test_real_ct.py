"""Ingesting a real scanner's series (TCIA Lung-PET-CT-Dx, CC BY 4.0): geometry, HU, crop."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from shared.crop_box import GPU_BOX
from shared.dicom.checks import check_series
from shared.dicom.scan import scan
from shared.dicom.volume import load_hu
from shared.preprocessing import preprocess
from shared.preprocessing.mediastinum import body_mask, lung_mask
from site_agent.config import SitePreprocessing, load_site_settings
from site_agent.ingest.pipeline import ingest
from tests.conftest import real_ct_dir


def test_real_series_geometry_and_hu() -> None:
    found = scan(real_ct_dir().parent)
    assert len(found.series) == 1 and found.not_dicom  # the annotations and README are not DICOM
    geometry = check_series(found.series[0], min_slices=20)
    assert len(geometry.instances) == 64
    assert geometry.pixel_spacing == pytest.approx((0.842, 0.842), abs=0.001)
    assert geometry.slice_spacing == pytest.approx(5.0, abs=1e-3)
    volume = load_hu(geometry)
    assert volume.hu.shape == (512, 512, 64)
    low, high = volume.hu_range
    assert low == -1024.0 and high > 1000  # air at the bottom of the scale, dense bone at the top
    assert np.allclose(np.diag(volume.affine)[:3], [-0.842, -0.842, 5.0], atol=1e-3)  # LPS -> RAS


def test_real_crop_is_between_the_lungs_and_in_front_of_the_spine() -> None:
    found = scan(real_ct_dir().parent)
    volume = load_hu(check_series(found.series[0], min_slices=20))
    cropped = preprocess(volume.hu, volume.affine, None, SitePreprocessing())
    # Independent landmarks in scanner RAS millimetres, from the full-resolution volume.
    body = body_mask(volume.hu)
    lungs = lung_mask(volume.hu, body)
    to_ras = lambda ijk: (volume.affine @ np.array([*ijk, 1.0]))[:3]  # noqa: E731
    midline = int(np.mean(np.nonzero(body)[0]))
    halves = [lungs.copy(), lungs.copy()]
    halves[0][midline:] = False
    halves[1][:midline] = False
    lung_x = sorted(to_ras(ndimage.center_of_mass(half))[0] for half in halves)
    bone = (volume.hu > 250) & body
    spine_y = to_ras(ndimage.center_of_mass(bone[200:312, :, :]) + np.array([200, 0, 0]))[1]
    x, y, z = cropped.centre_ras
    assert lung_x[0] < x < lung_x[1], f"centre x {x:.0f} not between the lungs {lung_x}"
    assert y > spine_y, (
        f"centre y {y:.0f} is not in front of the spine at {spine_y:.0f}"
    )  # RAS: +y is anterior
    assert cropped.image.shape == GPU_BOX
    # Foot to head, the box holds the lungs' whole extent but a few millimetres at apex and base:
    # thoracic inlet to diaphragm.
    levels = np.flatnonzero(lungs.sum(axis=(0, 1)) > 0.05 * lungs.sum(axis=(0, 1)).max())
    apex, base = (to_ras((0, 0, k))[2] for k in (levels.max(), levels.min()))
    half_height = GPU_BOX[2] * SitePreprocessing().spacing_mm / 2
    low, high = min(apex, base), max(apex, base)
    assert z - half_height <= low + 10 and z + half_height >= high - 10, (
        f"box {z - half_height:.0f}..{z + half_height:.0f} mm, lungs {low:.0f}..{high:.0f} mm"
    )


def test_real_series_ingests_through_the_cli_path(site_config: Path) -> None:
    settings = load_site_settings(site_config)
    report = ingest(settings, real_ct_dir().parent)
    assert len(report.accepted) == 1 and not report.refused
    case = report.accepted[0]
    assert case.source_slices == 64 and case.source_spacing_mm[2] == pytest.approx(5.0)
    assert case.hu_min == -1024.0


@pytest.mark.parametrize(("cut", "names"), [("top", "lung apices"), ("bottom", "lung bases")])
def test_a_real_series_cut_off_at_the_apex_or_base_is_refused_with_its_reason(
    site_config: Path, tmp_path: Path, cut: str, names: str
) -> None:
    """As a new user tried: a public CT starting below the lung apices must not be cropped from
    half a chest without a word."""
    files = sorted(
        (p for p in real_ct_dir().glob("*.dcm")),
        key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]),
    )
    kept = files[:-16] if cut == "top" else files[16:]  # 80 mm off one end (DICOM z grows to the head)
    partial = tmp_path / "partial"
    partial.mkdir()
    for path in kept:
        shutil.copy(path, partial / path.name)
    report = ingest(load_site_settings(site_config), partial)
    assert not report.accepted and len(report.refused) == 1
    refusal = report.refused[0]
    assert refusal.check == "incomplete-chest" and names in refusal.detail, refusal
