"""Text fit for an API answer: what a client is told must be valid JSON and say nothing of the
coordinator's own machine."""

from __future__ import annotations

import re


def printable(value: object) -> object:
    """A piece of a validation error as JSON can carry it: a lone surrogate escaped, not fatal."""
    if isinstance(value, int):
        return value
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"`]+/)+(?=[^\s/'\"`]*)")


def plain_reason(text: str) -> str:
    """A reason fit for an API answer: Flower's colour codes removed, and every absolute path cut
    to its last part (a client has no business learning the coordinator's folder layout)."""
    return _ABSOLUTE_PATH.sub("", _ANSI.sub("", text))
