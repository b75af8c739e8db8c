"""Run `site-agent doctor` or `coordinator doctor` as a hospital or an operator would, read its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shared.doctor_checks import Check


def run_doctor(module: str, config: Path) -> tuple[int, dict[str, list[Check]]]:
    """The exit code, and the checks by name (a name may appear more than once)."""
    done = subprocess.run(
        [sys.executable, "-m", module, "doctor", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    found: dict[str, list[Check]] = {}
    for entry in json.loads(done.stdout):
        found.setdefault(entry["name"], []).append(Check(**entry))
    return done.returncode, found
