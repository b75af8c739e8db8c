"""How fedsynth starts Flower's own processes (SuperLink, SuperNode, the `flwr` CLI).

Every Flower process runs offline and audited: telemetry and update checks off, no runtime
installation of app dependencies (apps run in the agent's installed environment), and its own
Flower home folder under the owner's data folder instead of `~/.flwr`.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path


def flower_environment(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    # Flower starts helper executables (flower-superexec, flwr-serverapp, flwr-clientapp) by name:
    # the folder of this interpreter comes first so they are the ones installed beside fedsynth.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {
        **os.environ,
        **(extra or {}),
        "PATH": path,
        "FLWR_HOME": str(home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    }


def flower_executable(name: str) -> str:
    """The Flower executable installed beside this interpreter (for example `flower-superlink`)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for tests and the demo on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)
