"""The ledger survives torn writes and kill -9, refuses to answer when edited, and composes runs."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.privacy import DPRun, Mechanism, compose_epsilon
from site_agent.privacy.ledger import Ledger, LedgerError, total_spend

PLAN = DPRun(noise_multiplier=1.5, sample_rate=0.2, steps=100, delta=1e-5, accountant="rdp")
NO_DP = DPRun(noise_multiplier=0.0, sample_rate=0.2, steps=100, delta=1e-5, accountant="rdp")


def reserve(ledger: Ledger, run_id: str, plan: DPRun = PLAN, round_id: str = "r1") -> None:
    ledger.reserve(run_id=run_id, round_id=round_id, plan=plan, max_grad_norm=1.0)


def test_runs_are_charged_in_full_from_reservation_and_composed(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    reserve(ledger, "a")
    reserve(ledger, "b", DPRun(1.5, 0.2, 300, 1e-5, "rdp"))
    ledger.complete("a", steps=100, epsilon=2.5)
    runs = ledger.runs()
    assert runs["a"].state == "complete" and runs["b"].state == "running"
    spend = total_spend(runs, delta=1e-5, accountant="rdp", cap=100)
    expected = compose_epsilon(
        [Mechanism(1.5, 0.2, 100), Mechanism(1.5, 0.2, 300)], delta=1e-5, accountant="rdp"
    )
    assert spend.epsilon == pytest.approx(expected)  # the running run "b" counts all 300 planned steps
    assert spend.remaining == pytest.approx(100 - expected)


def test_a_non_private_release_leaves_no_guarantee(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    reserve(ledger, "np", NO_DP)
    ledger.complete("np", steps=100, epsilon=math.inf)
    assert total_spend(ledger.runs(), delta=1e-5, accountant="rdp", cap=10).epsilon == 0.0
    ledger.release("np", round_id="r1", samples=6, set_sha256="0" * 64)
    spend = total_spend(ledger.runs(), delta=1e-5, accountant="rdp", cap=10)
    assert math.isinf(spend.epsilon) and spend.remaining == 0 and spend.non_private_releases == 1


def test_a_torn_last_line_is_ignored_and_cut_off_by_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    reserve(ledger, "a")
    with path.open("ab") as fh:
        fh.write(b'{"event": "complete", "run_id": "a", "st')  # a writer killed mid-line
    assert [e["event"] for e in ledger.events()] == ["reserve"]
    ledger.complete("a", steps=100, epsilon=2.5)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["crc"] for line in lines)
    assert ledger.runs()["a"].state == "complete"


def test_an_edited_ledger_is_refused_not_guessed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    reserve(ledger, "a")
    reserve(ledger, "b")
    path.write_text(path.read_text().replace('"steps": 100', '"steps": 1', 1))  # someone lowers a charge
    with pytest.raises(LedgerError, match="damaged at line 1"):
        ledger.runs()


def test_events_about_unknown_runs_are_refused(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    with pytest.raises(LedgerError, match="never reserved"):
        ledger.complete("ghost", steps=1, epsilon=1.0)
    reserve(ledger, "a")
    ledger.complete("a", steps=100, epsilon=2.5)
    with pytest.raises(LedgerError, match="complete already"):
        ledger.complete("a", steps=100, epsilon=2.5)
    other = Ledger(tmp_path / "other.jsonl")  # a valid line about a run this ledger never reserved
    reserve(other, "ghost")
    other.complete("ghost", steps=1, epsilon=1.0)
    with ledger.path.open("a") as fh:
        fh.write(other.path.read_text().splitlines()[-1] + "\n")
    with pytest.raises(LedgerError, match="never reserved"):
        ledger.runs()


WRITER = """
import sys
from shared.privacy import DPRun
from site_agent.privacy.ledger import Ledger
ledger = Ledger(__import__("pathlib").Path(sys.argv[1]))
plan = DPRun(noise_multiplier=1.0, sample_rate=0.1, steps=10, delta=1e-5, accountant="rdp")
n = 0
while True:  # long round names make each line long, so that a kill lands mid-write more often
    ledger.reserve(run_id=f"run-{n}", round_id="r" * 5000, plan=plan, max_grad_norm=1.0)
    n += 1
"""


def test_kill_9_during_writes_loses_no_acknowledged_event_and_breaks_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not path.exists() or path.read_bytes().count(b"\n") < 40):
            time.sleep(0.01)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait()
    ledger = Ledger(path)
    runs = ledger.runs()  # every complete line is intact; a torn tail, if any, is ignored
    assert len(runs) >= 40
    assert list(runs) == [f"run-{n}" for n in range(len(runs))]
    ledger.complete("run-0", steps=10, epsilon=1.0)
    assert ledger.runs()["run-0"].state == "complete"
    assert path.read_bytes().endswith(b"\n")


FULL_DISK = """
import json, resource, sys
from pathlib import Path
from shared.privacy import DPRun
from site_agent.privacy.ledger import Ledger, LedgerError
path = Path(sys.argv[1])
ledger = Ledger(path)
plan = DPRun(noise_multiplier=1.5, sample_rate=0.2, steps=100, delta=1e-5, accountant="rdp")
ledger.reserve(run_id="a", round_id="r1", plan=plan, max_grad_norm=1.0)
before = path.read_bytes()
# The disk fills up part way through the next line: the kernel writes what fits and stops.
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 40, hard))
try:
    ledger.reserve(run_id="b", round_id="r1", plan=plan, max_grad_norm=1.0)
    error = None
except LedgerError as exc:
    error = str(exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space freed
unchanged = path.read_bytes() == before
ledger.reserve(run_id="c", round_id="r1", plan=plan, max_grad_norm=1.0)
print(json.dumps({"error": error, "unchanged": unchanged, "runs": sorted(ledger.runs())}))
"""


def test_a_full_disk_mid_event_leaves_the_ledger_as_it_was_and_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path / "ledger.jsonl")],
        capture_output=True,
        text=True,
        check=True,
    )
    outcome = json.loads(result.stdout)
    assert outcome["error"] is not None and "could not record a reserve event" in outcome["error"]
    assert outcome["unchanged"]  # no torn half line left behind
    assert outcome["runs"] == ["a", "c"]
