"""Each tissue's HU, read back from the DICOM files the phantom wrote, lies in its nominal range."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from shared.phantom import PROFILES, generate_study
from shared.phantom.canvas import NOMINAL_HU, Tissue
from shared.phantom.dicom_io import spec_for_study, write_series


def read_hu(paths: list) -> np.ndarray:
    """The series as pydicom reads it, in slice-position order, in HU."""
    datasets = sorted((pydicom.dcmread(p) for p in paths), key=lambda d: float(d.ImagePositionPatient[2]))
    return np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets])


# Blur and noise move a tissue's median by a few HU at most once its edges are eroded away.
TOLERANCE_HU = 12.0
MIN_VOXELS = 30


@pytest.mark.parametrize(
    "profile,label", [("site_a", "normal"), ("site_c", "thymoma"), ("external", "benign_cyst")]
)
def test_tissue_hu_read_back_from_dicom_is_in_range(tmp_path, profile: str, label: str) -> None:
    study = generate_study(PROFILES[profile], label, seed=5, index=3, matrix=192, slice_mm=3.0)
    paths = write_series(
        tmp_path, spec_for_study(study), study.identity, study.profile, contrast=study.body.contrast
    )
    hu = read_hu(paths)
    assert hu.shape == study.tissue.shape
    checked = []
    inplane = np.zeros((3, 3, 3), bool)
    inplane[1] = True  # erode within the slice, where the kernel blurs
    inplane[:, 1, 1] = True
    for tissue, ranges in NOMINAL_HU.items():
        core = ndimage.binary_erosion(study.tissue == tissue, structure=inplane, iterations=2)
        if core.sum() < MIN_VOXELS:
            continue
        lo, hi = ranges[int(study.body.contrast)]
        offset = PROFILES[profile].hu_offset if tissue != Tissue.AIR else 0.0
        median = float(np.median(hu[core])) - offset
        assert lo - TOLERANCE_HU <= median <= hi + TOLERANCE_HU, f"{tissue.name}: median {median:.0f} HU"
        checked.append(tissue)
    # The big tissues of the chest must all have been seen.
    for tissue in (
        Tissue.AIR,
        Tissue.LUNG,
        Tissue.MUSCLE,
        Tissue.SUBCUTANEOUS_FAT,
        Tissue.MEDIASTINAL_FAT,
        Tissue.BLOOD,
        Tissue.HEART,
        Tissue.BONE_CANCELLOUS,
        Tissue.ABDOMEN,
    ):
        assert tissue in checked, f"{tissue.name} had no interior voxels to check"


def test_noise_grows_with_the_profile_and_shrinks_with_voxel_size() -> None:
    def water_noise(profile: str, matrix: int) -> float:
        s = generate_study(PROFILES[profile], "normal", seed=2, index=1, matrix=matrix, slice_mm=3.0)
        core = ndimage.binary_erosion(s.tissue == Tissue.ABDOMEN, iterations=3)
        return float(np.std(s.hu[core]))

    assert water_noise("site_c", 192) > 1.5 * water_noise("site_d", 192)  # 26 vs 9 HU profiles
    assert water_noise("site_c", 96) < water_noise("site_c", 192)
