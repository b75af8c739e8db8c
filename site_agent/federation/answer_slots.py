"""At most N heavy answers at once on one machine, for machines that run several site agents.

An answer that trains or scores imports torch and MONAI in a fresh ClientApp process (about 450
MB and 5 CPU seconds before it starts its work). A machine that runs several site agents (a
hospital group's shared server, `coordinator demo`, `bench.scale`) gets those messages for all its
sites at once, and can run out of memory. `[compute] answers_at_once` bounds them: each heavy
answer first takes one of N lock files in a folder every agent on the machine shares, with flock,
which the kernel releases with the process however it ends, so a crashed answer never keeps its
slot. 0 (the default, one agent per machine) takes no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

SLOTS_FOLDER = Path(tempfile.gettempdir()) / "fedsynth-answer-slots"
POLL_S = 0.5


@contextlib.contextmanager
def answer_slot(slots: int, folder: Path = SLOTS_FOLDER) -> Iterator[None]:
    """Hold one of `slots` slots on this machine for the duration (none when `slots` is 0)."""
    if slots <= 0:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    waited_since: float | None = None
    while True:
        for n in range(slots):
            fd = os.open(folder / f"slot-{n}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if waited_since is not None:
                log.info("took an answer slot after %.0f s", time.monotonic() - waited_since)
            try:
                yield
            finally:
                os.close(fd)  # closing drops the lock
            return
        if waited_since is None:
            waited_since = time.monotonic()
            log.info(
                "all %d answer slots on this machine are busy ([compute] answers_at_once): waiting", slots
            )
        time.sleep(POLL_S)
