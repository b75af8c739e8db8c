"""`coordinator demo`, run as a real process: it drives real `site-agent` processes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from coordinator.demo import prepare_folder
from shared.schemas import DatasetCard
from shared.synthetic_set import verify_synthetic_set
from site_agent.config import load_site_settings


def coordinator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordinator", *args], capture_output=True, text=True, check=False
    )


def test_demo_sets_up_a_coordinator_and_phantom_hospitals_that_release_dp_synthetic_sets(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo"
    result = coordinator("demo", "--out", str(out), "--cases", "12")
    assert result.returncode == 0, result.stderr
    assert (out / "coordinator" / "coordinator.toml").is_file()
    for site in ("site_a", "site_b", "site_c", "site_d", "external"):
        home = out / "sites" / site
        assert load_site_settings(home / "site.toml").site_id == site
        with (home / "phantom-dicom" / "labels.csv").open() as fh:
            assert len(list(csv.DictReader(fh))) == 12
        assert list((home / "phantom-dicom" / "preview").glob("*.png"))
        report = json.loads((home / "logs" / "demo-ingest.json").read_text())
        # Every good study is in the site's store; only site_a's broken inputs are refused.
        assert len(report["accepted"]) == 12 + (1 if site == "site_a" else 0)  # + the two-series study
        assert len(report["refused"]) == (5 if site == "site_a" else 0)
        if site == "external":
            assert not (out / "synthetic" / site).exists()  # the external site only tests
            continue
        # Each training site spent epsilon 8 on a generator and released a verified set.
        assert verify_synthetic_set(out / "synthetic" / site) == 2 * 6 * 2 + 3
        card = DatasetCard.read(out / "synthetic" / site / "card.json")
        assert 7.9 < card.sites[0].privacy.epsilon <= 8.0 and card.sites[0].site_id == site
        ledger = (home / "privacy" / "ledger.jsonl").read_text().splitlines()
        assert [json.loads(line)["event"] for line in ledger] == ["reserve", "complete", "release"]
    assert (out / "sites" / "site_a" / "phantom-dicom" / "defects.csv").is_file()
    assert "Not built yet" in result.stdout  # it says plainly what it did not do
    page = (out / "index.html").read_text()
    images = [part.split("'")[0] for part in page.split("<img src='")[1:]]
    assert len(images) >= 5 * 2 and all((out / image).is_file() for image in images)

    too_few = coordinator("demo", "--out", str(out), "--cases", "1")
    assert too_few.returncode == 2 and "--cases" in too_few.stderr
    assert (out / "synthetic" / "site_a" / "card.json").is_file()  # a refused run touches nothing

    prepare_folder(out)  # what a re-run does first: its own folder is replaced
    assert [p.name for p in out.iterdir()] == [".fedsynth-demo"]


def test_demo_never_touches_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep")
    result = coordinator("demo", "--out", str(tmp_path))
    assert result.returncode == 2 and "was not made by the demo" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_version_and_help_explain_every_command() -> None:
    from shared import __version__

    assert coordinator("--version").stdout.strip() == f"coordinator {__version__}"
    result = coordinator("--help")
    assert result.returncode == 0
    for command in ("init", "config", "demo"):
        assert command in result.stdout
