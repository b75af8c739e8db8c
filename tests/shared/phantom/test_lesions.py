"""Each class's lesion sits in its ITMIG compartment, within its size range, and the classes overlap."""

from __future__ import annotations

import numpy as np
import pytest

from shared.classes import DEFAULT_CLASSES, NORMAL
from shared.phantom import PROFILES, Study, generate_study
from shared.phantom.lesions import PARAVERTEBRAL, PREVASCULAR, SIZE_RANGE_MM, VISCERAL

SEEDS = range(4)


def _studies(label: str) -> list[Study]:
    profiles = ["site_a", "site_b", "site_c", "site_d"]
    return [
        generate_study(PROFILES[profiles[s]], label, seed=100 + s, index=s, matrix=96, slice_mm=4.0)
        for s in SEEDS
    ]


def _centroid_mm(study: Study) -> np.ndarray:
    k, i, j = (np.mean(a) for a in np.nonzero(study.mask))
    g = study.grid
    return np.array(
        [g.origin[0] + j * g.spacing[0], g.origin[1] + i * g.spacing[1], g.origin[2] + k * g.spacing[2]]
    )


def _extent_mm(study: Study) -> float:
    idx = np.nonzero(study.mask)
    g = study.grid
    spans = [
        (np.ptp(idx[2]) + 1) * g.spacing[0],
        (np.ptp(idx[1]) + 1) * g.spacing[1],
        (np.ptp(idx[0]) + 1) * g.spacing[2],
    ]
    return float(max(spans))


def _compartment(study: Study, c: np.ndarray) -> str:
    """ITMIG compartments from the patient's own landmarks, independent of how the lesion was placed."""
    lm = study.landmarks
    vertebra_front = lm.vertebra_center_y - 0.85 * lm.vertebra_half_width
    if c[1] > vertebra_front + 10.0:  # behind a line 1 cm behind the front of the vertebral bodies
        return PARAVERTEBRAL
    # Below the aortic root the visceral compartment's front is the pericardium: a lesion that
    # hugs the heart there (a pericardial cyst at a cardiophrenic angle) is visceral.
    d = c - np.array(lm.heart_center)
    local = np.array(lm.heart_rotation) @ d / np.array(lm.heart_radii)
    if c[2] < lm.heart_center[2] and float(np.linalg.norm(local)) < 1.5:
        return VISCERAL
    if c[1] < lm.aorta_front_y + 8.0:  # in front of the great vessels
        return PREVASCULAR
    return VISCERAL


@pytest.mark.parametrize("label", [c for c in DEFAULT_CLASSES if c != NORMAL])
def test_lesion_in_its_compartment_and_size_range(label: str) -> None:
    for study in _studies(label):
        assert study.mask.sum() > 20, "lesion must be visible"
        c = _centroid_mm(study)
        assert _compartment(study, c) == study.lesion.compartment, (study.lesion, c)
        lo, hi = SIZE_RANGE_MM[label]
        assert lo <= study.lesion.diameter_mm <= hi
        extent = _extent_mm(study)
        voxel = max(study.grid.spacing)
        # Bumps can add to the drawn radius; the chest wall and vessels can only take away.
        assert extent <= 1.35 * study.lesion.diameter_mm + 2 * voxel
        assert extent >= min(0.4 * study.lesion.diameter_mm, 0.4 * lo)


def test_expected_compartments_per_class() -> None:
    seen = {
        label: {s.lesion.compartment for s in _studies(label)} for label in DEFAULT_CLASSES if label != NORMAL
    }
    assert seen["thymoma"] == {PREVASCULAR}
    assert seen["thymic_carcinoma"] == {PREVASCULAR}
    assert seen["germ_cell_tumour"] == {PREVASCULAR}
    assert seen["neurogenic_tumour"] == {PARAVERTEBRAL}
    assert seen["benign_cyst"] <= {PREVASCULAR, VISCERAL}


def test_normal_studies_have_no_lesion() -> None:
    for study in _studies(NORMAL):
        assert study.mask.sum() == 0


def test_classes_are_not_separable_by_attenuation_or_size_alone() -> None:
    """Solid classes share attenuations and every size range overlaps another class's."""
    medians: dict[str, list[float]] = {}
    for label in ("thymoma", "thymic_carcinoma", "neurogenic_tumour"):
        medians[label] = []
        for seed in range(6):
            s = generate_study(PROFILES["site_c"], label, seed=seed, index=1, matrix=64, slice_mm=5.0)
            medians[label].append(float(np.median(s.hu[s.mask.astype(bool)])) - s.profile.hu_offset)
    ranges = {k: (min(v), max(v)) for k, v in medians.items()}
    for a in ranges:
        for b in ranges:
            if a < b:
                overlap = min(ranges[a][1], ranges[b][1]) - max(ranges[a][0], ranges[b][0])
                assert overlap > 0, f"{a} {ranges[a]} and {b} {ranges[b]} do not overlap in HU"
    sizes = list(SIZE_RANGE_MM.values())
    for n, (lo, hi) in enumerate(sizes):
        assert any(lo < other_hi and other_lo < hi for m, (other_lo, other_hi) in enumerate(sizes) if m != n)
