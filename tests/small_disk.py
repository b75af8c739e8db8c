"""A real small disk for tests of what happens when one fills up: a size-capped tmpfs mounted on a
folder, which the kernel fills and then refuses with ENOSPC, as a full volume does."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    return subprocess.run([*sudo, "mount", *args], capture_output=True, text=True, check=False)


@contextmanager
def small_disk(folder: Path, size_kb: int) -> Iterator[Path]:
    """`folder` as a tmpfs of `size_kb`; unmounted afterwards, whatever the test did."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = _mount("-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(folder))
    if mounted.returncode != 0:
        message = f"cannot mount a small tmpfs (root or passwordless sudo needed): {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI runs as root: a refusal there is a broken set-up, not a skip
        pytest.skip(message)
    try:
        yield folder
    finally:
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        subprocess.run([*sudo, "umount", "--lazy", str(folder)], capture_output=True, check=False)


def grow(folder: Path, size_kb: int) -> None:
    """Give a small disk more room, as an operator who freed space or grew the volume would."""
    grown = _mount("-o", f"remount,size={size_kb}k", str(folder))
    assert grown.returncode == 0, grown.stderr
