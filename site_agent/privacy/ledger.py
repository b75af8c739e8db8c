"""The site's privacy ledger: an append-only JSON-lines file of every DP run and every release.

Opacus' second layer: it records history and answers epsilon; it never touches a model.

    {"event": "reserve",  "run_id": ..., "round_id": ..., "noise_multiplier": ..., "sample_rate": ...,
     "steps": <planned>, "max_grad_norm": ..., "delta": ..., "accountant": ..., "epsilon": ...}
    {"event": "complete", "run_id": ..., "steps": <ran>, "epsilon": ...}
    {"event": "abandon",  "run_id": ...}
    {"event": "release",  "run_id": ..., "round_id": ..., "samples": ..., "set_sha256": ...}
    {"event": "refuse",   "run_id": ..., "round_id": ..., "reason": ...}

A run is charged in full when it is reserved, before its first step: whatever happens next (a
crash, a kill, an abandoned run) the budget never forgets it. A resumed run reuses its reservation,
so nothing is charged twice. The site's total is the composition of every run's mechanism through
the accountant at the site's delta.

Durability: each event is one line, written with one `write()` on an O_APPEND descriptor and
fsync'ed under an exclusive lock, and carries a checksum. A process killed mid-write leaves at most
a torn last line without its newline; readers ignore it and the next writer cuts it off. A bad line
anywhere else means the file was edited or damaged: the ledger refuses to answer rather than guess.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from shared.errors import FedsynthError
from shared.privacy import Mechanism, compose_epsilon
from shared.privacy.accounting import AccountantName

EventKind = Literal["reserve", "complete", "abandon", "release", "refuse"]
EVENTS: tuple[str, ...] = ("reserve", "complete", "abandon", "release", "refuse")


class LedgerError(FedsynthError):
    """The ledger is damaged or an event contradicts it (an unknown run, a run completed twice)."""


@dataclass
class Run:
    """One training run as the ledger knows it."""

    run_id: str
    round_id: str
    accountant: AccountantName
    noise_multiplier: float  # 0 for a non-private run
    sample_rate: float
    planned_steps: int
    max_grad_norm: float
    delta: float
    planned_epsilon: float
    reserved_at: str
    steps: int | None = None  # set when complete
    epsilon: float | None = None  # set when complete
    state: Literal["running", "complete", "abandoned"] = "running"
    releases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def private(self) -> bool:
        return self.noise_multiplier > 0

    @property
    def charged_steps(self) -> int:
        """Until a run completes, it is charged for every step it planned."""
        return self.steps if self.state == "complete" and self.steps is not None else self.planned_steps

    def mechanism(self) -> Mechanism:
        return Mechanism(self.noise_multiplier, self.sample_rate, self.charged_steps)


def _checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    # --- writing -----------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the ledger across processes (CLI, SuperNode) for a read-check-write."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def append(self, event: EventKind, **fields: Any) -> dict[str, Any]:
        """Append one event durably. Call inside `locked()` when the event depends on a check."""
        if event not in EVENTS:
            raise LedgerError(f"unknown ledger event {event!r}")
        body = {"event": event, "at": datetime.now(UTC).isoformat(timespec="seconds"), **fields}
        line = json.dumps({**body, "crc": _checksum(body)}, sort_keys=True, allow_nan=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self._cut_torn_tail(fd)
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:  # the new file's directory entry must survive a power cut too
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return body

    @staticmethod
    def _cut_torn_tail(fd: int) -> None:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size == 0:
            return
        os.lseek(fd, max(0, size - 1), os.SEEK_SET)
        if os.read(fd, 1) == b"\n":
            return
        # A writer died mid-line: drop everything after the last complete line.
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, size)
        os.ftruncate(fd, data.rfind(b"\n") + 1)
        os.fsync(fd)

    # --- reading -----------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]  # `tail` is b"" unless the last write was torn
        events = []
        for number, raw in enumerate(complete, 1):
            try:
                record = json.loads(raw)
                crc = record.pop("crc")
                valid = isinstance(record, dict) and crc == _checksum(record) and record["event"] in EVENTS
            except (ValueError, KeyError, TypeError, AttributeError):
                valid = False
            if not valid:
                raise LedgerError(
                    f"the privacy ledger {self.path} is damaged at line {number}: it was edited or "
                    "corrupted. No training or export can be allowed until it is restored from backup."
                )
            events.append(record)
        del tail  # a torn last line was never acknowledged to anyone: it did not happen
        return events

    def runs(self) -> dict[str, Run]:
        runs: dict[str, Run] = {}
        for e in self.events():
            kind = e["event"]
            if kind == "reserve":
                if e["run_id"] in runs:
                    raise LedgerError(f"ledger reserves run {e['run_id']} twice")
                runs[e["run_id"]] = Run(
                    run_id=e["run_id"],
                    round_id=e["round_id"],
                    accountant=e["accountant"],
                    noise_multiplier=e["noise_multiplier"],
                    sample_rate=e["sample_rate"],
                    planned_steps=e["steps"],
                    max_grad_norm=e["max_grad_norm"],
                    delta=e["delta"],
                    planned_epsilon=_number(e["epsilon"]),
                    reserved_at=e["at"],
                )
                continue
            run = runs.get(e["run_id"])
            if run is None:
                raise LedgerError(f"ledger event {kind!r} names run {e['run_id']}, which was never reserved")
            if kind == "complete":
                run.state, run.steps, run.epsilon = "complete", e["steps"], _number(e["epsilon"])
            elif kind == "abandon":
                run.state = "abandoned"
            else:
                run.releases.append(e)
        return runs

    def unfinished(self) -> list[Run]:
        return [r for r in self.runs().values() if r.state == "running"]


def _number(value: Any) -> float:
    # JSON has no infinity; non-private runs store epsilon as the string "inf".
    return math.inf if value == "inf" else float(value)


def encode_epsilon(epsilon: float) -> float | str:
    return "inf" if math.isinf(epsilon) else epsilon


@dataclass(frozen=True)
class Spend:
    """The site's budget as composed over its ledger."""

    epsilon: float  # composed over every private run; inf once a non-private set has left
    delta: float
    accountant: AccountantName
    cap: float
    runs: int
    releases: int
    non_private_releases: int

    @property
    def remaining(self) -> float:
        return max(0.0, self.cap - self.epsilon)


def total_spend(runs: dict[str, Run], *, delta: float, accountant: AccountantName, cap: float) -> Spend:
    private = [r.mechanism() for r in runs.values() if r.private]
    epsilon = compose_epsilon(private, delta=delta, accountant=accountant)
    non_private_releases = sum(
        1 for r in runs.values() if not r.private for e in r.releases if e["event"] == "release"
    )
    if non_private_releases:
        epsilon = math.inf  # a set from a model without DP left the site: no guarantee remains
    return Spend(
        epsilon=epsilon,
        delta=delta,
        accountant=accountant,
        cap=cap,
        runs=len(runs),
        releases=sum(1 for r in runs.values() for e in r.releases if e["event"] == "release"),
        non_private_releases=non_private_releases,
    )
