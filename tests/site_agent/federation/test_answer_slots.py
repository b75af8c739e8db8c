"""Several agents on one machine take turns for their heavy answers, and a crashed answer never
keeps its turn."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from site_agent.federation.answer_slots import answer_slot

HOLD = """
import sys, time
from pathlib import Path
from site_agent.federation.answer_slots import answer_slot
with answer_slot(int(sys.argv[1]), Path(sys.argv[2])):
    Path(sys.argv[3]).touch()
    time.sleep(600)
"""


def _holder(slots: int, folder: Path, took: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", HOLD, str(slots), str(folder), str(took)])


def _wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def test_answers_wait_for_a_free_slot_and_a_killed_holder_frees_its_own(tmp_path: Path) -> None:
    folder = tmp_path / "slots"
    first, second, third = (tmp_path / name for name in ("first", "second", "third"))
    holders = [_holder(2, folder, first), _holder(2, folder, second)]
    try:
        assert _wait_for(first, 30) and _wait_for(second, 30)
        holders.append(_holder(2, folder, third))
        assert not _wait_for(third, 3.0)  # both slots are held: the third waits its turn
        holders[0].send_signal(signal.SIGKILL)  # a crash, mid-answer
        assert _wait_for(third, 10.0)
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


def test_no_limit_takes_no_lock(tmp_path: Path) -> None:
    with answer_slot(0, tmp_path / "slots"):
        pass
    assert not (tmp_path / "slots").exists()
