"""Clearing what a killed process left behind: files and folders named `<prefix><pid>[-...]`.

Work in progress is written under a name carrying its process id, so a later run can tell what
belongs to a process that no longer exists (a `kill -9`, a crash) and remove it, while never
touching the work of a run still going.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def remove_leftovers(folder: Path, prefix: str) -> None:
    for path in folder.glob(f"{prefix}*"):
        pid = path.name[len(prefix) :].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
