"""The ServerApp's heartbeat: a live ServerApp keeps its round from being asked about, and one
silent for SILENT_S is taken for dead (the federation tests then see the round run again)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from coordinator.federation.heartbeat import HEARTBEAT_S, SILENT_S, ServerAppHeartbeat
from coordinator.federation.launch import QUIET_S, is_quiet
from coordinator.federation.rounds import RoundFolder, RoundReport


def _quiet_report(folder: RoundFolder, run_id: int) -> RoundReport:
    report = RoundReport(round_id="r1", state="training", flower_run_id=run_id)
    folder.write_report(report)
    stale = time.time() - QUIET_S - 1  # nothing written to the report for longer than QUIET_S
    os.utime(folder.report_path, (stale, stale))
    report.updated_at = datetime.fromtimestamp(stale, UTC)
    return report


def test_a_beating_serverapp_keeps_its_round_from_looking_quiet_and_a_silent_one_does_not(
    tmp_path: Path,
) -> None:
    folder = RoundFolder(tmp_path / "r1")
    report = _quiet_report(folder, run_id=7)
    assert is_quiet(folder, report)  # no heartbeat at all: ask Flower, as before
    with ServerAppHeartbeat(folder, run_id=7):
        time.sleep(HEARTBEAT_S / 4)
        assert folder.heartbeat_age_s(7) is not None and folder.heartbeat_age_s(7) < HEARTBEAT_S
        assert not is_quiet(folder, report)  # training quietly, but alive
        first = folder.heartbeat_path.stat().st_mtime
        time.sleep(HEARTBEAT_S * 1.5)
        assert folder.heartbeat_path.stat().st_mtime > first  # it keeps beating
    # Another run's heartbeat says nothing about this one (a re-run whose ServerApp is starting).
    assert folder.heartbeat_age_s(8) is None
    silent = time.time() - SILENT_S - 1
    os.utime(folder.heartbeat_path, (silent, silent))
    assert folder.heartbeat_age_s(7) > SILENT_S  # type: ignore[operator]
    assert is_quiet(folder, report)  # silent too long: Flower is asked, and a running run is dead
