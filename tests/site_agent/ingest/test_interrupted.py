"""An ingest killed halfway leaves everything already in the store exactly as it was."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from shared.phantom import PhantomRequest, write_phantom
from site_agent.config import load_site_settings
from site_agent.ingest.pipeline import ingest
from site_agent.ingest.store import CaseStore


def _snapshot(store_dir: Path) -> tuple[dict[str, str], set[tuple[object, ...]]]:
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (store_dir / "cases").iterdir()}
    with contextlib.closing(sqlite3.connect(store_dir / "index.sqlite")) as db:
        rows = set(db.execute("SELECT * FROM cases").fetchall())
    return files, rows


def _rows(store_dir: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(store_dir / "index.sqlite", timeout=5)) as db:
            return int(db.execute("SELECT COUNT(*) FROM cases").fetchone()[0])
    except sqlite3.OperationalError:  # busy beyond the timeout: count again on the next poll
        return 0


def test_kill_during_ingest_changes_nothing_already_stored(tmp_path: Path, site_config: Path) -> None:
    settings = load_site_settings(site_config)
    first = tmp_path / "first"
    write_phantom(PhantomRequest(out=first, cases=3, profile="site_a", seed=1, matrix=64, slice_mm=6.0))
    ingest(settings, first)
    store_dir = settings.paths.store
    before = _snapshot(store_dir)

    second = tmp_path / "second"
    write_phantom(PhantomRequest(out=second, cases=16, profile="site_b", seed=2, matrix=64, slice_mm=6.0))
    process = subprocess.Popen(
        [sys.executable, "-m", "site_agent", "ingest", str(second), "--config", str(site_config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so the kill takes its worker processes too
    )
    try:
        for _ in range(900):  # bounded: at most 90 s
            if _rows(store_dir) > 4:  # it has stored a couple of new cases and is busy with more
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.1)
        assert process.poll() is None, "the ingest finished before it could be killed"
    finally:
        # What systemd does to a stopped service: SIGKILL to every process of the group.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    files_after, rows_after = _snapshot(store_dir)
    files_before, rows_before = before
    assert {name: files_after.get(name) for name in files_before} == files_before  # every earlier file intact
    assert rows_before <= rows_after  # every earlier index row intact
    with CaseStore(store_dir) as store:  # opens cleanly; every indexed file is there and loads
        for record in store.all_latest():
            store.load(record.case_id)
        indexed = {r.file.split("/")[-1] for r in store.all_latest()}
        assert {p.name for p in store.cases_dir.iterdir()} == indexed  # orphans of the killed run removed
    # Running the interrupted ingest again finishes the job.
    report = ingest(settings, second)
    assert len(report.accepted) == 16
