"""Keyed pseudonyms: the only names a study, series or file has in logs, reports and the store.

A case id is an HMAC of the StudyInstanceUID under a secret that never leaves the site, so the
same study always gets the same id (re-ingesting finds it), nobody without the secret can link an
id back to a UID, and nobody at all can read a patient identifier or a path in it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

SECRET_FILE = ".site-secret"


def load_or_create_secret(store: Path) -> bytes:
    """The site's pseudonym key, created on first use (readable by its owner only)."""
    store.mkdir(parents=True, exist_ok=True)
    path = store / SECRET_FILE
    if not path.exists():
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    return path.read_bytes()


class Pseudonyms:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _digest(self, kind: str, value: str, length: int = 12) -> str:
        # A file name that is not valid UTF-8 reaches us with its bytes as surrogates (os.fsdecode):
        # hash those bytes back, as the file system holds them, rather than fail on them.
        message = f"{kind}:{value}".encode("utf-8", "surrogateescape")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:length]

    def case_id(self, study_uid: str) -> str:
        return f"case-{self._digest('study', study_uid)}"

    def patient_ref(self, patient_id: str, study_uid: str) -> str:
        """The privacy unit. A study without a PatientID is counted as a patient of its own."""
        if patient_id:
            return f"patient-{self._digest('patient', patient_id)}"
        return f"patient-{self._digest('patient-of-study', study_uid)}"

    def series_ref(self, series_uid: str) -> str:
        return f"series-{self._digest('series', series_uid)}"

    def file_ref(self, relative_path: str) -> str:
        return f"file-{self._digest('file', relative_path)}"
