"""A store of the first design's 128 mm cubes is refused with what to run, and left untouched."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from site_agent.config import load_site_settings
from site_agent.ingest.store import STORE_VERSION, CaseStore, StoreError


def test_a_new_store_is_stamped_with_the_current_version(tmp_path: Path) -> None:
    with CaseStore(tmp_path / "store"):
        pass
    with sqlite3.connect(tmp_path / "store" / "index.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == STORE_VERSION


def test_a_store_of_cubes_is_refused_with_the_command_to_run_and_nothing_changes(
    site_config: Path,
) -> None:
    store = load_site_settings(site_config).paths.store
    with CaseStore(store):
        pass
    with sqlite3.connect(store / "index.sqlite") as db:  # what fedsynth 0.1 left: cases, version 0
        db.execute("PRAGMA user_version = 0")
        db.execute(
            "INSERT INTO cases VALUES ('case-1', 1, 'f', 'thymoma', 'train', 'cases/case-1.v1.npz', 1, "
            "'[32, 32, 32]', 4.0, '[1, 1, 5]', 60, -1024, 1500, '2026-01-01', 'p')"
        )
    (store / "cases" / "case-1.v1.npz").write_bytes(b"an old cube")
    before = _contents(store)

    with pytest.raises(StoreError) as err:
        CaseStore(store)
    assert "128 mm cube" in str(err.value) and "site-agent ingest" in str(err.value)
    result = subprocess.run(
        [sys.executable, "-m", "site_agent", "cases", "--config", str(site_config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "ingest the DICOM again" in result.stderr
    assert _contents(store) == before  # the old rows, version and case file exactly as they were


def _contents(store: Path) -> tuple[list[tuple[object, ...]], int, dict[str, bytes]]:
    with sqlite3.connect(store / "index.sqlite") as db:
        rows = db.execute("SELECT * FROM cases").fetchall()
        version = db.execute("PRAGMA user_version").fetchone()[0]
    return rows, version, {p.name: p.read_bytes() for p in (store / "cases").iterdir()}
