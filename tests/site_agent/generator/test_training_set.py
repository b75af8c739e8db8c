"""The privacy unit is the patient: two studies of one patient are one example, on one side of the split."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom

from site_agent.config import load_site_settings
from site_agent.generator.training_set import select_cases
from site_agent.ingest.pipeline import ingest
from site_agent.ingest.store import CaseStore
from tests.site_agent.conftest import TrainedSite, tiny_site


def test_two_studies_of_one_patient_count_once(trained_site: TrainedSite, tmp_path: Path) -> None:
    dicom = tmp_path / "dicom"
    shutil.copytree(trained_site.dicom, dicom)
    studies = sorted(dicom.glob("study_*"))
    files = [sorted(p for p in study.rglob("*") if p.is_file()) for study in studies[:2]]
    first_patient = pydicom.dcmread(files[0][0], stop_before_pixels=True).PatientID
    for path in files[1]:  # the second study now belongs to the first patient
        ds = pydicom.dcmread(path)
        ds.PatientID = first_patient
        ds.save_as(path)
    settings = load_site_settings(tiny_site(tmp_path / "site"))
    ingest(settings, dicom, labels_csv=dicom / "labels.csv")

    with CaseStore(settings.paths.store) as store:
        cases = store.all_latest()
        patients = {c.patient for c in cases}
        shared = [c for c in cases if sum(d.patient == c.patient for d in cases) == 2]
        selection = select_cases(store)
    assert len(cases) == 24 and len(patients) == 23
    assert len(shared) == 2 and shared[0].split == shared[1].split
    assert len({c.patient for c in selection.chosen}) == len(selection.chosen)
    assert all(str(first_patient) not in str(c.patient) for c in cases)
    if shared[0].split == "train":
        assert selection.extra_studies == 1
