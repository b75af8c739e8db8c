"""The last guard on every log line and warning a fedsynth command prints: DICOM UIDs are blanked.

Our own code names cases, series and files only by keyed pseudonyms, but third-party libraries
(pydicom, pynetdicom, Flower) format values of the files they read into their messages and warnings.
Each of those messages passes through this filter before it reaches stderr or a log file.
"""

from __future__ import annotations

import logging
import re

# A DICOM UID: numeric components joined by dots, the first 0, 1 or 2 (ISO/ITU roots), at least
# three components. Shorter dotted numbers (versions, IPv4 addresses, 0.0.0.0) are left alone.
_UID = re.compile(r"(?<![\d.])[012]\.\d+(?:\.\d+)+(?![\d.])")
MIN_UID_LENGTH = 10
REDACTED = "<uid>"


def redact_uids(text: str) -> str:
    return _UID.sub(lambda m: REDACTED if len(m.group()) >= MIN_UID_LENGTH else m.group(), text)


class RedactUids(logging.Filter):
    """Rewrites a record whose message holds a UID; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_uids(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def guard_logging() -> None:
    """Send Python warnings through logging, and put the filter on every handler of the root
    logger, so that every library's records and warnings pass it whatever logger they use."""
    logging.captureWarnings(True)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactUids) for f in handler.filters):
            handler.addFilter(RedactUids())
