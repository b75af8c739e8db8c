"""One process at a time for work that two would do twice: an advisory lock on a file.

The operating system drops the lock with the process that held it, so a killed holder never
blocks the next one and there is no stale lock file to clean up by hand.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def held_alone(path: Path, busy: Callable[[], Exception]) -> Iterator[None]:
    """Hold the lock on `path` for the block; raise `busy()` at once if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy() from None
        yield
    finally:
        os.close(fd)  # closing releases the lock
