"""The `site-agent` command, run as a real process the way hospital IT runs it."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from shared import __version__


def site_agent(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "site_agent", *args], capture_output=True, text=True, cwd=cwd, check=False
    )


def test_version_and_help_explain_every_command() -> None:
    result = site_agent("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"site-agent {__version__}"
    result = site_agent("--help")
    assert result.returncode == 0
    for command in ("init", "config", "phantom"):
        assert command in result.stdout
    assert "leaves this machine" in result.stdout
    assert "--list-profiles" in site_agent("phantom", "--help").stdout


def test_init_then_config_shows_the_settings(tmp_path: Path) -> None:
    result = site_agent("init", str(tmp_path / "site"), "--site-id", "hospital-b")
    assert result.returncode == 0, result.stderr
    shown = site_agent("config", "--config", str(tmp_path / "site" / "site.toml"))
    assert shown.returncode == 0 and '"site_id": "hospital-b"' in shown.stdout


def test_bad_config_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    result = site_agent("config", cwd=tmp_path)
    assert result.returncode == 2
    assert "site.toml does not exist" in result.stderr and "Traceback" not in result.stderr


def test_phantom_writes_a_hospital(tmp_path: Path) -> None:
    out = tmp_path / "dicom"
    result = site_agent(
        "phantom",
        str(out),
        "--cases",
        "3",
        "--profile",
        "site_d",
        "--seed",
        "4",
        "--matrix",
        "48",
        "--slice-mm",
        "8",
    )
    assert result.returncode == 0, result.stderr
    with (out / "labels.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    assert all((out / r["folder"]).is_dir() and (out / r["mask"]).is_file() for r in rows)
    assert "3 studies" in result.stdout


def test_phantom_list_profiles_and_bad_input(tmp_path: Path) -> None:
    listing = site_agent("phantom", "--list-profiles")
    assert listing.returncode == 0
    for name in ("site_a", "site_b", "site_c", "site_d", "external"):
        assert name in listing.stdout
    bad = site_agent("phantom", str(tmp_path / "o"), "--profile", "nowhere")
    assert bad.returncode == 2 and "unknown phantom profile 'nowhere'" in bad.stderr
    assert not (tmp_path / "o").exists()
    missing = site_agent("phantom")
    assert missing.returncode == 2 and "output folder" in missing.stderr
