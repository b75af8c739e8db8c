"""The phantom next to one real chest CT (TCIA Lung-PET-CT-Dx, CC BY 4.0; see the data's README).

The real series is too small to calibrate anything, but it keeps the phantom honest on the basics:
the same header layout a real scanner writes, and tissue attenuations where a real scan has them.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from shared.phantom import PROFILES, generate_study
from shared.phantom.dicom_io import spec_for_study, write_series
from tests.conftest import real_ct_dir
from tests.shared.phantom.test_dicom_and_masks import REQUIRED


def _hu(datasets: list[pydicom.Dataset]) -> np.ndarray:
    return np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets])


def _peak(volume: np.ndarray, lo: float, hi: float) -> float:
    counts, edges = np.histogram(volume, bins=np.arange(lo, hi + 10, 10))
    return float(edges[np.argmax(counts)] + 5)


@pytest.fixture(scope="module")
def real() -> list[pydicom.Dataset]:
    return [pydicom.dcmread(f) for f in sorted(real_ct_dir().glob("*.dcm"))]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> list[pydicom.Dataset]:
    # Same scanner class as the real series: Philips, soft kernel, 5 mm slices, no contrast.
    study = generate_study(PROFILES["site_c"], "normal", seed=3, index=1, matrix=512, slice_mm=5.0)
    assert not study.body.contrast
    folder = tmp_path_factory.mktemp("like-real")
    paths = write_series(folder, spec_for_study(study), study.identity, study.profile, contrast=False)
    return [pydicom.dcmread(p) for p in paths]


def test_phantom_writes_every_tag_our_checks_require_and_so_does_a_real_scanner(real, phantom) -> None:
    for keyword in REQUIRED:
        assert keyword in real[0], f"the real series lacks {keyword}: the check is not a real-world one"
        assert keyword in phantom[0]
    assert real[0].SOPClassUID == phantom[0].SOPClassUID
    shared_identity_tags = {
        "PatientAge",
        "PatientWeight",
        "PatientBirthDate",
        "ProtocolName",
        "AccessionNumber",
    }
    assert shared_identity_tags <= set(real[0].dir()) & set(phantom[0].dir())


def test_tissue_peaks_match_a_real_chest_ct(real, phantom) -> None:
    real_hu, phantom_hu = _hu(real), _hu(phantom)
    offset = PROFILES["site_c"].hu_offset
    assert abs(_peak(real_hu, -200, -50) - (_peak(phantom_hu, -200, -50) - offset)) <= 30  # fat
    assert abs(_peak(real_hu, 0, 100) - (_peak(phantom_hu, 0, 100) - offset)) <= 30  # soft tissue, blood
    for volume in (real_hu, phantom_hu):
        rows, cols = volume.shape[1:]
        # Inside the chest, not room air.
        centre = volume[:, rows // 4 : 3 * rows // 4, cols // 4 : 3 * cols // 4]
        assert -960 <= _peak(centre, -980, -600) <= -780  # aerated lung
        assert 0.15 < float(np.mean(volume < -500)) < 0.75  # a thorax: lots of air and lung, lots of body
