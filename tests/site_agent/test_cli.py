"""The `site-agent` command, run as a real process the way hospital IT runs it."""

from __future__ import annotations

import contextlib
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


def test_a_killed_run_leaves_no_dataset_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "dicom"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "site_agent",
            "phantom",
            str(out),
            "--cases",
            "200",
            "--matrix",
            "64",
            "--slice-mm",
            "6",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    staging = tmp_path / f".dicom.partial-{process.pid}"
    try:
        # Wait (bounded) until it has written at least one whole study, then kill it hard.
        for _ in range(600):
            if (staging / "masks").is_dir():
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.1)  # returns at once if the process ended
        assert process.poll() is None, "the run finished before it could be killed"
    finally:
        process.kill()
        process.wait()
    assert not out.exists()
    assert staging.is_dir()  # kill -9 leaves its staging folder behind...
    rerun = site_agent("phantom", str(out), "--cases", "1", "--matrix", "48", "--slice-mm", "8")
    assert rerun.returncode == 0, rerun.stderr
    assert not staging.exists()  # ...which the next run removes, its owner being gone
    assert (out / "labels.csv").is_file()
