"""`site-agent cases`, `cases show` and `locate`, as hospital IT runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shared.phantom import PhantomSummary


def _site_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "site_agent", *args], capture_output=True, text=True, check=False
    )


def test_ingest_list_show_and_locate(phantom_site: PhantomSummary, site_config: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    ingested = _site_agent(
        "ingest",
        str(phantom_site.out),
        "--config",
        str(site_config),
        "--labels",
        str(phantom_site.out / "labels.csv"),
        "--report",
        str(report),
    )
    # Some series refused (the phantom's defects), the rest stored: exit code 1, not 0.
    assert ingested.returncode == 1, ingested.stderr
    assert "refused" in ingested.stdout and "pixel-data" in ingested.stdout
    assert "its kernel is in [ingest] avoid_kernels" in ingested.stdout  # brackets printed as they are
    assert "7 case(s) stored or already stored" in ingested.stdout
    assert "The store holds 7 case(s)." in ingested.stdout

    listed = json.loads(_site_agent("cases", "--config", str(site_config), "--json").stdout)
    assert len(listed) == 7 and {"case_id", "label", "split", "shape"} <= set(listed[0])
    png = tmp_path / "case.png"
    shown = _site_agent(
        "cases", "show", listed[0]["case_id"], "--png", str(png), "--config", str(site_config)
    )
    assert shown.returncode == 0 and png.read_bytes()[:4] == b"\x89PNG"

    truncated = next(r for r in json.loads(report.read_text())["refused"] if r["check"] == "pixel-data")
    located = _site_agent(
        "locate", truncated["file_ref"], str(phantom_site.out), "--config", str(site_config)
    )
    assert located.returncode == 0
    assert located.stdout.strip().startswith(str(phantom_site.out / "defect_truncated_file"))

    missing = _site_agent(
        "cases", "show", "case-000000000000", "--png", str(png), "--config", str(site_config)
    )
    assert missing.returncode == 2 and "no case 'case-000000000000'" in missing.stderr
    nowhere = _site_agent("ingest", str(tmp_path / "nowhere"), "--config", str(site_config))
    assert nowhere.returncode == 2 and "does not exist" in nowhere.stderr
