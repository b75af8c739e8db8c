"""The `flwr` command line, run with the coordinator's own Flower home and SuperLink connection.

Every call asks for JSON output and turns a failure into a FederationError that quotes Flower.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from coordinator.config import CoordinatorSettings
from coordinator.federation.certificates import CertificateFiles
from coordinator.federation.errors import FederationError, SuperLinkUnavailable
from shared.federation.processes import flower_environment, flower_executable

CONNECTION = "fedsynth"


def flower_home(settings: CoordinatorSettings) -> Path:
    return settings.paths.data / "flower"


def client_address(settings: CoordinatorSettings) -> str:
    """Where this machine reaches the SuperLink: loopback when it listens on every interface."""
    fed = settings.federation
    host = "127.0.0.1" if fed.superlink_host in ("0.0.0.0", "::", "") else fed.superlink_host
    return f"{host}:{fed.superlink_port}"


def _cli_home(settings: CoordinatorSettings) -> Path:
    home = flower_home(settings) / "cli"
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]"]
    lines.append(f'address = "{client_address(settings)}"')
    if settings.federation.insecure:
        lines.append("insecure = true")
    else:
        ca = CertificateFiles(settings.paths.certificates).require().ca_certificate
        lines.append(f"root-certificates = {json.dumps(str(ca))}")
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    return home


def flwr(settings: CoordinatorSettings, *args: str, timeout: float = 120.0) -> dict[str, Any]:
    """Run `flwr ARGS --format json` against this coordinator's SuperLink; return its JSON answer."""
    env = flower_environment(_cli_home(settings))
    command = [flower_executable("flwr"), *args, "--format", "json"]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise SuperLinkUnavailable(f"`flwr {args[0]}` did not answer within {timeout:.0f} s") from None
    answer = _json_object(result.stdout)
    if result.returncode != 0 or not answer.get("success", False):
        reason = answer.get("error-message") or result.stderr.strip() or result.stdout.strip()
        lines = [line for line in str(reason).splitlines() if line.strip() and not line.startswith("Using ")]
        message = f"`flwr {' '.join(args[:2])}` failed: {' '.join(lines)}"
        if "unavailable" in message.lower():
            message += f" Is the SuperLink running (`coordinator superlink`) at {client_address(settings)}?"
            raise SuperLinkUnavailable(message)
        raise FederationError(message)
    return answer


def _json_object(text: str) -> dict[str, Any]:
    # flwr prints one JSON object, sometimes after a line of human-readable notes.
    start = text.find("{")
    if start < 0:
        return {}
    try:
        value = json.loads(text[start:])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
