"""The site's privacy ledger: an append-only JSON-lines file of every DP run and every release.

Opacus' second layer: it records history and answers epsilon; it never touches a model.

    {"event": "reserve",  "run_id": ..., "round_id": ..., "noise_multiplier": ..., "sample_rate": ...,
     "steps": <planned>, "max_grad_norm": ..., "delta": ..., "accountant": ..., "epsilon": ...}
    {"event": "complete", "run_id": ..., "steps": <ran>, "epsilon": ...}
    {"event": "abandon",  "run_id": ...}
    {"event": "release",  "run_id": ..., "round_id": ..., "samples": ..., "set_sha256": ...}
    {"event": "refuse",   "run_id": ..., "round_id": ..., "reason": ...}

Nothing outside this module writes an event: callers use `reserve`, `complete`, `abandon`,
`release` and `refuse`, each of which takes the lock itself, and read typed records back.

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

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from shared.privacy import AccountantName, DPRun, Mechanism, compose_epsilon, decode_epsilon, encode_epsilon
from site_agent.errors import SiteAgentError
from site_agent.privacy.composition_memo import composed_epsilon

EventKind = Literal["reserve", "complete", "abandon", "release", "refuse"]
EVENTS: tuple[str, ...] = ("reserve", "complete", "abandon", "release", "refuse")


class LedgerError(SiteAgentError):
    """The ledger is damaged or an event contradicts it (an unknown run, a run completed twice)."""


@dataclass(frozen=True)
class Release:
    """A synthetic set that left (or may leave) the site, recorded before it was handed out."""

    round_id: str
    samples: int
    set_sha256: str
    at: str


@dataclass(frozen=True)
class ExportRefusal:
    """A set the memorisation audit kept on site."""

    round_id: str
    reason: str
    at: str


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
    releases: list[Release] = field(default_factory=list)
    refusals: list[ExportRefusal] = field(default_factory=list)

    @property
    def private(self) -> bool:
        return self.noise_multiplier > 0

    @property
    def plan(self) -> DPRun:
        """The run as it was reserved: a resumed run trains exactly this."""
        return DPRun(self.noise_multiplier, self.sample_rate, self.planned_steps, self.delta, self.accountant)

    @property
    def charged_steps(self) -> int:
        """Until a run completes, it is charged for every step it planned."""
        return self.steps if self.state == "complete" and self.steps is not None else self.planned_steps

    def mechanism(self) -> Mechanism:
        return Mechanism(self.noise_multiplier, self.sample_rate, self.charged_steps)


def _checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


Admit = Callable[[dict[str, Run]], None]  # raises to refuse a reservation, given every run so far


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    # --- the vocabulary: each method takes the lock, checks against what is recorded, appends ---

    def reserve(
        self, *, run_id: str, round_id: str, plan: DPRun, max_grad_norm: float, admit: Admit | None = None
    ) -> Run:
        """Charge a whole planned run before its first step. `admit` (the budget's cap check) runs
        under the same lock, so two processes can never both fit under the cap."""
        with self._locked():
            runs = self.runs()
            if run_id in runs:
                raise LedgerError(f"run {run_id} is already in the ledger")
            if admit is not None:
                admit(runs)
            self._append(
                "reserve",
                run_id=run_id,
                round_id=round_id,
                accountant=plan.accountant,
                noise_multiplier=plan.noise_multiplier,
                sample_rate=plan.sample_rate,
                steps=plan.steps,
                max_grad_norm=max_grad_norm,
                delta=plan.delta,
                epsilon=encode_epsilon(plan.planned_epsilon),
            )
            return self.runs()[run_id]

    def complete(self, run_id: str, *, steps: int, epsilon: float) -> None:
        with self._locked():
            self._running(run_id)
            self._append("complete", run_id=run_id, steps=steps, epsilon=encode_epsilon(epsilon))

    def abandon(self, run_ids: Iterable[str]) -> None:
        """Give runs up; what they reserved stays charged."""
        with self._locked():
            for run_id in run_ids:
                self._running(run_id)
                self._append("abandon", run_id=run_id)

    def release(self, run_id: str, *, round_id: str, samples: int, set_sha256: str) -> None:
        with self._locked():
            self._known(run_id)
            self._append("release", run_id=run_id, round_id=round_id, samples=samples, set_sha256=set_sha256)

    def refuse(self, run_id: str, *, round_id: str, reason: str) -> None:
        with self._locked():
            self._known(run_id)
            self._append("refuse", run_id=run_id, round_id=round_id, reason=reason)

    def _known(self, run_id: str) -> Run:
        run = self.runs().get(run_id)
        if run is None:
            raise LedgerError(f"run {run_id} was never reserved in {self.path}")
        return run

    def _running(self, run_id: str) -> None:
        run = self._known(run_id)
        if run.state != "running":
            raise LedgerError(f"run {run_id} is {run.state} already")

    # --- writing -----------------------------------------------------------------------------

    @contextmanager
    def held(self) -> Iterator[None]:
        """No event is written while the block runs (a restore puts a whole ledger in place)."""
        with self._locked():
            yield

    def snapshot(self, target: Path) -> int:
        """Copy the ledger to `target` as it stands between two events: every complete, checked
        line and nothing torn. Returns the number of events; a damaged ledger is refused."""
        with self._locked():
            events = len(self.events())
            data = self.path.read_bytes() if self.path.exists() else b""
        target.write_bytes(data[: data.rfind(b"\n") + 1])
        return events

    @contextmanager
    def _locked(self) -> Iterator[None]:
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

    def _append(self, event: EventKind, **fields: Any) -> None:
        """Append one event durably; only the vocabulary above calls this, under the lock."""
        body = {"event": event, "at": datetime.now(UTC).isoformat(timespec="seconds"), **fields}
        line = json.dumps({**body, "crc": _checksum(body)}, sort_keys=True, allow_nan=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self._cut_torn_tail(fd)
            before = os.lseek(fd, 0, os.SEEK_END)
            data = line.encode()
            try:
                written = os.write(fd, data)
                if written != len(data):  # a full disk (or a file size limit) part way through
                    raise OSError(errno.ENOSPC, f"only {written} of {len(data)} bytes could be written")
                os.fsync(fd)
            except OSError as exc:
                # Never leave half an event: cut the file back to what it was, so the ledger reads
                # exactly as before this call, and say so in one line.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, before)
                    os.fsync(fd)
                raise LedgerError(
                    f"the privacy ledger {self.path} could not record a {event} event ({exc.strerror}); "
                    "the ledger is as it was before: free disk space and run again"
                ) from exc
        finally:
            os.close(fd)
        if created:  # the new file's directory entry must survive a power cut too
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

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
            record = _checked(raw)
            if record is None:
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
                    planned_epsilon=decode_epsilon(e["epsilon"]),
                    reserved_at=e["at"],
                )
                continue
            run = runs.get(e["run_id"])
            if run is None:
                raise LedgerError(f"ledger event {kind!r} names run {e['run_id']}, which was never reserved")
            if kind == "complete":
                run.state, run.steps, run.epsilon = "complete", e["steps"], decode_epsilon(e["epsilon"])
            elif kind == "abandon":
                run.state = "abandoned"
            elif kind == "release":
                run.releases.append(Release(e["round_id"], e["samples"], e["set_sha256"], e["at"]))
            else:
                run.refusals.append(ExportRefusal(e["round_id"], e["reason"], e["at"]))
        return runs

    def unfinished(self) -> list[Run]:
        return [r for r in self.runs().values() if r.state == "running"]

    def latest_complete(self, round_id: str) -> Run | None:
        """The round's most recently reserved run that finished training, if any."""
        done = [r for r in self.runs().values() if r.round_id == round_id and r.state == "complete"]
        return max(done, key=lambda r: (r.reserved_at, r.run_id)) if done else None

    def release_of(self, round_id: str) -> tuple[Run, Release] | None:
        """The set released for round `round_id` (a round releases at most once), with its run."""
        for run in self.runs().values():
            for release in run.releases:
                if release.round_id == round_id:
                    return run, release
        return None


def readable_events(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Every line of a ledger whose checksum holds, wherever it stands, and how many lines do not:
    what a damaged ledger still proves was spent (a restore must not forget any of it)."""
    if not path.exists():
        return [], 0
    events, damaged = [], 0
    for raw in path.read_bytes().split(b"\n")[:-1]:  # the last piece is empty or a torn line
        record = _checked(raw)
        if record is None:
            damaged += 1
        else:
            events.append(record)
    return events, damaged


def _checked(raw: bytes) -> dict[str, Any] | None:
    """One line's event, without its checksum; None when the line is not one the ledger wrote."""
    try:
        record = json.loads(raw)
        crc = record.pop("crc")
        valid = isinstance(record, dict) and crc == _checksum(record) and record["event"] in EVENTS
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return record if valid else None


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


def total_spend(
    runs: dict[str, Run], *, delta: float, accountant: AccountantName, cap: float, memo: Path | None = None
) -> Spend:
    """The composed spend of `runs`; with the ledger's path as `memo`, a history the accountant
    has answered before is read from its memo (composition_memo.py) instead of composed again."""
    private = [r.mechanism() for r in runs.values() if r.private]
    epsilon = (
        compose_epsilon(private, delta=delta, accountant=accountant)
        if memo is None
        else composed_epsilon(memo, private, delta=delta, accountant=accountant)
    )
    non_private_releases = sum(len(r.releases) for r in runs.values() if not r.private)
    if non_private_releases:
        epsilon = math.inf  # a set from a model without DP left the site: no guarantee remains
    return Spend(
        epsilon=epsilon,
        delta=delta,
        accountant=accountant,
        cap=cap,
        runs=len(runs),
        releases=sum(len(r.releases) for r in runs.values()),
        non_private_releases=non_private_releases,
    )
