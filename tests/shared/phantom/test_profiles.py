import pytest

from shared.classes import DEFAULT_CLASSES
from shared.phantom import (
    PROFILES,
    TRAINING_PROFILES,
    PhantomError,
    PhantomRequest,
    get_profile,
    write_phantom,
)
from shared.phantom.dataset import assign_labels


def test_four_training_profiles_and_an_external_one_that_differ_in_every_axis() -> None:
    assert len(TRAINING_PROFILES) >= 4 and "external" in PROFILES and "external" not in TRAINING_PROFILES
    profiles = [PROFILES[n] for n in (*TRAINING_PROFILES, "external")]
    for attribute in (
        "pixel_spacing_mm",
        "slice_spacing_mm",
        "noise_hu",
        "kernel_blur_mm",
        "hu_offset",
        "contrast_rate",
        "manufacturer",
        "patient_size",
        "file_naming",
    ):
        values = [getattr(p, attribute) for p in profiles]
        assert len(set(values)) >= 4, f"profiles barely differ in {attribute}: {values}"
    prevalences = {tuple(round(p.prevalence[c], 3) for c in DEFAULT_CLASSES) for p in profiles}
    assert len(prevalences) == len(profiles)
    for p in profiles:
        lo, hi = p.pixel_spacing_mm
        assert 0.6 <= lo <= hi <= 1.0 and 1.0 <= p.slice_spacing_mm <= 5.0 and 8 <= p.noise_hu <= 30


def test_unknown_profile_is_named_in_the_error() -> None:
    with pytest.raises(PhantomError, match=r"'site_z'.*site_a"):
        get_profile("site_z")


def test_prevalence_and_balanced_labels(tmp_path) -> None:
    balanced = assign_labels(PhantomRequest(out=tmp_path, cases=60, profile="site_a", seed=1, balanced=True))
    assert all(balanced.count(c) == 10 for c in DEFAULT_CLASSES)
    drawn = assign_labels(PhantomRequest(out=tmp_path, cases=3000, profile="site_a", seed=1))
    for c in DEFAULT_CLASSES:
        assert drawn.count(c) / 3000 == pytest.approx(PROFILES["site_a"].prevalence[c], abs=0.03)


def test_refuses_a_non_empty_output_folder_and_leaves_it_alone(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(PhantomError, match="not empty"):
        write_phantom(PhantomRequest(out=out, cases=1, profile="site_a", seed=0, matrix=48, slice_mm=8))
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not list(tmp_path.glob(".out.partial-*"))


@pytest.mark.parametrize("matrix,slice_mm", [(16, 5.0), (64, 0.1)])
def test_bad_sizes_are_refused(tmp_path, matrix: int, slice_mm: float) -> None:
    with pytest.raises(PhantomError):
        write_phantom(
            PhantomRequest(
                out=tmp_path / "o", cases=1, profile="site_a", seed=0, matrix=matrix, slice_mm=slice_mm
            )
        )
    assert not (tmp_path / "o").exists()
