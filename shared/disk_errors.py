"""Whether an error is the disk refusing a write: one rule for every command, service and answer."""

from __future__ import annotations

import errno

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}
# How SQLite and PostgreSQL say the same, inside their own exceptions.
_NO_SPACE_WORDS = ("database or disk is full", "disk i/o error", "no space left on device")


def disk_refused(exc: BaseException) -> bool:
    """Whether an error, or one it was raised from, is the disk refusing a write: full, over a
    quota or a file size limit, or failing."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _NO_SPACE:
            return True
        if any(words in str(seen).lower() for words in _NO_SPACE_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
