"""Ingesting a phantom hospital: every good study stored, every defect refused for its own reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from shared.phantom import PhantomSummary, read_labels
from site_agent.config import load_site_settings
from site_agent.ingest.labels import LabelsError
from site_agent.ingest.pipeline import ingest
from site_agent.ingest.store import CaseStore
from tests.conftest import TEST_BOX, TEST_SPACING_MM

EXPECTED_REFUSALS = {
    "defect_missing_slice": "missing-slice",
    "defect_duplicate_slice": "duplicate-slice",
    "defect_non_ct": "modality",
    "defect_truncated_file": "pixel-data",
    "defect_gantry_tilt": "gantry-tilt",
}


def test_good_studies_are_stored_and_each_defect_refused_for_its_own_reason(
    phantom_site: PhantomSummary, site_config: Path
) -> None:
    settings = load_site_settings(site_config)
    report = ingest(settings, phantom_site.out, labels_csv=phantom_site.out / "labels.csv")
    labels = {r["label"] for r in read_labels(phantom_site.out)}
    stored = [c for c in report.accepted if c.label is not None]
    assert {c.label for c in stored} == labels and len(stored) == 6
    assert all(
        c.status == "new" and c.shape == TEST_BOX and c.spacing_mm == TEST_SPACING_MM for c in report.accepted
    )
    assert all(c.has_mask for c in stored)  # masks joined through labels.csv
    # The two-series study is kept, from its soft-tissue series; the lung-kernel series is skipped.
    unlabelled = [c for c in report.accepted if c.label is None]
    assert len(unlabelled) == 1
    assert len(report.skipped) == 1 and "avoid_kernels" in report.skipped[0].reason
    checks = sorted(r.check for r in report.refused)
    assert checks == sorted(EXPECTED_REFUSALS.values())
    truncated = next(r for r in report.refused if r.check == "pixel-data")
    assert truncated.file_ref is not None and truncated.file_ref.startswith("file-")
    with CaseStore(settings.paths.store) as store:
        for case in report.accepted:
            _, image, mask = store.load(case.case_id)
            assert image.shape == TEST_BOX and image.dtype == np.float32
            assert image.min() >= -1.0 and image.max() <= 1.0
            assert (mask is not None) == case.has_mask


def test_lesions_of_the_phantom_land_in_the_stored_masks(
    phantom_site: PhantomSummary, site_config: Path
) -> None:
    settings = load_site_settings(site_config)
    report = ingest(settings, phantom_site.out, labels_csv=phantom_site.out / "labels.csv")
    with CaseStore(settings.paths.store) as store:
        for case in report.accepted:
            if case.label in (None, "normal"):
                continue
            _, image, mask = store.load(case.case_id)
            if mask is not None and mask.any():
                # Lesions are soft tissue, fluid, fat or calcium: in the window, not black lung.
                assert float(np.median(image[mask > 0])) > -0.9
    prevascular = [c for c in report.accepted if c.label in ("thymoma", "thymic_carcinoma")]
    with CaseStore(settings.paths.store) as store:
        assert any(store.load(c.case_id)[2].sum() > 0 for c in prevascular)  # type: ignore[union-attr]


def test_reingesting_is_a_no_op_and_a_changed_series_is_a_new_version(
    phantom_site: PhantomSummary, site_config: Path, tmp_path: Path
) -> None:
    settings = load_site_settings(site_config)
    dicom = tmp_path / "export"
    row = read_labels(phantom_site.out)[0]
    shutil.copytree(phantom_site.out / row["folder"], dicom / row["folder"])
    first = ingest(settings, dicom)
    again = ingest(settings, dicom)
    assert [c.status for c in again.accepted] == ["unchanged"]
    case_id = first.accepted[0].case_id
    with CaseStore(settings.paths.store) as store:
        _, before, _ = store.load(case_id)
        files_before = sorted(p.name for p in store.cases_dir.iterdir())

    victim = sorted((dicom / row["folder"]).iterdir())[len(list((dicom / row["folder"]).iterdir())) // 2]
    ds = pydicom.dcmread(victim)
    pixels = ds.pixel_array.copy()
    pixels[:8, :8] += 1  # one small change, as a re-reconstruction would make
    ds.PixelData = pixels.tobytes()
    ds.save_as(victim)
    changed = ingest(settings, dicom)
    assert [(c.status, c.version) for c in changed.accepted] == [("new-version", 2)]
    with CaseStore(settings.paths.store) as store:
        assert [r.version for r in store.versions(case_id)] == [1, 2]
        _, version_one, _ = store.load(case_id, version=1)
        assert np.array_equal(version_one, before)  # nothing already stored changed
        assert set(files_before) < {p.name for p in store.cases_dir.iterdir()}


def test_labels_split_and_relabelling(
    phantom_site: PhantomSummary, site_config: Path, tmp_path: Path
) -> None:
    settings = load_site_settings(site_config)
    rows = read_labels(phantom_site.out)
    manifest = tmp_path / "labels.csv"
    manifest.write_text(
        "study_uid,label,split\n" + "".join(f"{r['study_uid']},{r['label']},holdout\n" for r in rows)
    )
    report = ingest(settings, phantom_site.out, labels_csv=manifest)
    labelled = [c for c in report.accepted if c.label]
    assert len(labelled) == 6 and all(c.split == "holdout" and not c.has_mask for c in labelled)
    manifest.write_text("study_uid,label,split\n" + "".join(f"{r['study_uid']},normal,train\n" for r in rows))
    again = ingest(settings, phantom_site.out, labels_csv=manifest)
    relabelled = [c for c in again.accepted if c.status == "relabelled"]
    assert len(relabelled) == 6 and all(c.label == "normal" and c.split == "train" for c in relabelled)


@pytest.mark.parametrize(
    "content,message",
    [
        ("study,label\n1.2.3,thymoma\n", "missing column"),
        ("study_uid,label\n1.2.3,lymphoma\n", "line 2: label 'lymphoma'"),
        ("study_uid,label,split\n1.2.3,thymoma,test\n", "line 2: split 'test'"),
        ("study_uid,label\n1.2.3,thymoma\n1.2.3,normal\n", "line 3: this study_uid already appeared"),
        ("study_uid,label,mask\n1.2.3,thymoma,nowhere.nii.gz\n", "mask file 'nowhere.nii.gz' does not exist"),
    ],
)
def test_a_bad_label_file_is_refused_before_anything_is_stored(
    phantom_site: PhantomSummary, site_config: Path, tmp_path: Path, content: str, message: str
) -> None:
    settings = load_site_settings(site_config)
    manifest = tmp_path / "labels.csv"
    manifest.write_text(content)
    with pytest.raises(LabelsError, match=message) as err:
        ingest(settings, phantom_site.out, labels_csv=manifest)
    assert "1.2.3" not in str(err.value)  # errors name lines, never UIDs
    with CaseStore(settings.paths.store) as store:
        assert store.all_latest() == []


def test_a_small_site_always_keeps_a_held_out_patient_and_every_patient_keeps_their_split(
    phantom_site: PhantomSummary, site_config: Path
) -> None:
    # A fraction so small that the keyed draw holds nobody out: without the rule, this site could
    # never score a model. With it, the first labelled patient after HOLDOUT_AFTER is held out.
    site_config.write_text(
        site_config.read_text().replace("holdout_fraction = 0.2", "holdout_fraction = 1e-09")
    )
    settings = load_site_settings(site_config)
    assert settings.preprocessing.holdout_fraction == 1e-09
    first = ingest(settings, phantom_site.out, labels_csv=phantom_site.out / "labels.csv")
    labelled = [c for c in first.accepted if c.label is not None]
    assert len(labelled) == 6
    assert [c.split for c in labelled].count("holdout") == 1
    # Ingesting the same folder again changes no split: each patient keeps the one they were given.
    again = ingest(settings, phantom_site.out, labels_csv=phantom_site.out / "labels.csv")
    assert {c.case_id: c.split for c in again.accepted} == {c.case_id: c.split for c in first.accepted}
    assert all(c.status == "unchanged" for c in again.accepted)
