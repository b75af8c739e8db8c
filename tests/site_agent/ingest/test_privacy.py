"""No patient identifier, UID, header value or path reaches a log, a report or the store's index."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pydicom

from shared.phantom import PhantomRequest, read_labels, write_phantom

SECRET_NAME = "ZZSECRET^PATIENTNAME"
SECRET_ID = "MRN-ZZ998877"
SECRET_ACCESSION = "ACC-ZZ5544"
SECRET_FOLDER = "DOE_JOHN_MRN12345"
INVALID_UID = "1.2.826.0.1.ZZINVALID_UID.7"  # letters and an underscore: not a valid UID


def _site_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "site_agent", "-v", *args], capture_output=True, text=True, check=False
    )


def test_nothing_identifying_leaves_the_dicom_files(tmp_path: Path, site_config: Path) -> None:
    export = tmp_path / SECRET_FOLDER
    write_phantom(
        PhantomRequest(
            out=export,
            cases=3,
            profile="site_c",
            seed=3,
            matrix=64,
            slice_mm=6.0,
            balanced=True,
            defects=True,
        )
    )
    secrets = {SECRET_NAME, SECRET_ID, SECRET_ACCESSION, SECRET_FOLDER, "PHANTOM", "FSPH-", INVALID_UID}
    invalid: dict[str, str] = {}  # one series gets a UID pydicom finds invalid (pydicom would print it)
    for path in sorted(export.rglob("*")):
        if path.is_file() and path.suffix not in (".csv", ".gz", ".png"):
            try:
                ds = pydicom.dcmread(path)
            except Exception:
                continue  # the truncated defect file
            ds.PatientName, ds.PatientID, ds.AccessionNumber = SECRET_NAME, SECRET_ID, SECRET_ACCESSION
            invalid.setdefault(str(ds.SeriesInstanceUID), INVALID_UID)
            if str(ds.SeriesInstanceUID) in invalid:
                ds.SeriesInstanceUID = invalid[str(ds.SeriesInstanceUID)]
            secrets |= {str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)}
            ds.save_as(path)
        if path.is_file():
            secrets.add(path.name)
    secrets |= {row["study_uid"] for row in read_labels(export)}
    secrets = {s for s in secrets if len(s) >= 6}  # file names like IM_0001 are long enough to be distinctive

    report = tmp_path / "report.json"
    outputs = [
        _site_agent(
            "ingest",
            str(export),
            "--config",
            str(site_config),
            "--labels",
            str(export / "labels.csv"),
            "--report",
            str(report),
        ),
        _site_agent("cases", "--config", str(site_config), "--json"),
    ]
    assert outputs[0].returncode == 1, outputs[0].stderr  # stored, with the defects refused
    case_id = outputs[1].stdout.split('"case_id": "')[1].split('"')[0]
    outputs.append(
        _site_agent("cases", "show", case_id, "--png", str(tmp_path / "c.png"), "--config", str(site_config))
    )
    assert all(o.returncode == 0 for o in outputs[1:])
    assert "refused" in outputs[0].stdout  # the defects were reported...

    texts = [o.stdout + o.stderr for o in outputs] + [report.read_text()]
    site = site_config.parent
    texts += [p.read_bytes().decode("latin-1") for p in (site / "logs").rglob("*") if p.is_file()]
    texts += [p.read_bytes().decode("latin-1") for p in (site / "store").rglob("*") if p.is_file()]
    leaked = {s for s in secrets for text in texts if s in text}
    assert leaked == set(), f"leaked into outputs: {sorted(leaked)[:5]}"  # ...without naming anything
