"""Where the local copy of a release is: found by the SHA256SUMS hash the ledger recorded for it.

Apart from export.py, which makes releases (and loads torch to sample them), so that a site asked
again for a round it already released answers without torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from shared.synthetic_set import SUMS
from site_agent.config import SiteSettings


def released_copy(settings: SiteSettings, run_id: str, set_sha256: str) -> Path | None:
    """The local copy of a release the ledger records, found by its SHA256SUMS hash."""
    for folder in sorted(settings.paths.exports.glob(f"{run_id}-export-*")):
        sums = folder / SUMS
        if folder.is_dir() and sums.is_file() and hashlib.sha256(sums.read_bytes()).hexdigest() == set_sha256:
            return folder
    return None
