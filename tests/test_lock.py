"""requirements.lock, which scripts/setup and CI install from, pins every requirement of
pyproject.toml (its dev tools included) at a version the requirement allows, each with a hash."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes)."""
    pins: dict[str, tuple[str, int]] = {}
    name = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match.group(1))
            pins[name] = (match.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


def test_the_lock_pins_every_requirement_at_an_allowed_version_with_its_hash() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    wanted += project["optional-dependencies"]["s3"]
    locked = _locked()
    assert len(locked) > 100 and all(hashes for _, hashes in locked.values())
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name in ("torch", "fedsynth"):  # torch: installed first by scripts/setup, its build per host
            continue
        assert name in locked, f"{name} is not in requirements.lock: run scripts/lock"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside {requirement.specifier}: run scripts/lock"
        )
    assert "torch" not in locked and not any(n.startswith("nvidia-") for n in locked)  # no CUDA pinned
