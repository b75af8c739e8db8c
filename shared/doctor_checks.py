"""What `site-agent doctor` and `coordinator doctor` both check, and how both report it: each check
answers pass, warn or fail, with what to do; the command exits 1 when any fails."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from rich.table import Table
from rich.text import Text

from shared.cli_support import console

Status = Literal["pass", "warn", "fail"]
FREE_FAIL_BYTES = 1 << 30  # under 1 GiB free, ingestion, training or a round cannot finish
FREE_WARN_BYTES = 10 << 30
CERT_WARN_DAYS = 30
CONNECT_TIMEOUT_S = 5.0
_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def report(title: str, checks: list[Check], *, as_json: bool) -> int:
    """Print the checks (a table, or JSON); return the exit code: 1 when any failed."""
    if as_json:
        console.print_json(json.dumps([asdict(c) for c in checks]))
    else:
        table = Table(title=title)
        for column in ("check", "result", "detail", "what to do"):
            table.add_column(column, overflow="fold")
        for check in checks:
            table.add_row(check.name, Text(check.status, style=_STYLE[check.status]), check.detail, check.fix)
        console.print(table)
        failed = sum(c.status == "fail" for c in checks)
        warned = sum(c.status == "warn" for c in checks)
        console.print(f"{len(checks)} checks: {failed} failed, {warned} warned.")
    return 1 if any(c.status == "fail" for c in checks) else 0


def free_disk(folders: list[Path]) -> list[Check]:
    """One check per file system the folders live on."""
    checks = []
    seen: set[int] = set()
    for folder in folders:
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        device = existing.stat().st_dev
        if device in seen:
            continue
        seen.add(device)
        free = shutil.disk_usage(existing).free
        detail = f"{free / (1 << 30):.1f} GiB free where {folder} lives"
        status: Status = "fail" if free < FREE_FAIL_BYTES else "warn" if free < FREE_WARN_BYTES else "pass"
        fix = "" if status == "pass" else "free space or grow the volume"
        checks.append(Check("free disk", status, detail, fix))
    return checks


def clock() -> Check:
    try:
        shown = subprocess.run(
            ["timedatectl", "show", "--property=NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return Check(
            "clock", "warn", "cannot tell whether the clock is synchronised (no timedatectl)", "enable NTP"
        )
    if shown.stdout.strip() == "yes":
        return Check("clock", "pass", "synchronised (NTP)")
    return Check(
        "clock", "warn", "not synchronised by NTP: certificates and logs need a correct clock", "enable NTP"
    )


def certificate(name: str, path: Path, renew: str) -> list[Check]:
    """A PEM certificate's validity now: expired or not yet valid (a wrong clock) fail; within
    CERT_WARN_DAYS of its end warns."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return [Check(name, "fail", f"{path} cannot be read as a PEM certificate ({exc})", renew)]
    now = datetime.now(UTC)
    checks = []
    if now < cert.not_valid_before_utc:
        start = f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        checks.append(
            Check(
                "clock",
                "fail",
                f"the clock ({now:%Y-%m-%d %H:%M} UTC) is before {path.name} starts ({start})",
                "set the clock (NTP)",
            )
        )
    if now > cert.not_valid_after_utc:
        ago = (now - cert.not_valid_after_utc).days
        checks.append(Check(name, "fail", f"{path} expired {ago} days ago", renew))
    elif (left := (cert.not_valid_after_utc - now).days) < CERT_WARN_DAYS:
        checks.append(Check(name, "warn", f"{path} expires in {left} days", renew))
    else:
        checks.append(Check(name, "pass", f"{path.name} valid until {cert.not_valid_after_utc:%Y-%m-%d}"))
    return checks


def tls_endpoint(name: str, address: str, ca: Path) -> Check:
    """A TLS handshake with HOST:PORT that trusts only `ca`: no message is sent."""
    if not ca.is_file():
        return Check(
            name, "fail", f"{address}: not checked without the CA certificate {ca}", "put the CA there"
        )
    host, _, port = address.rpartition(":")
    try:
        context = ssl.create_default_context(cafile=str(ca))
        with (
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        detail = f"{address}: its certificate is not trusted ({exc.verify_message})"
        return Check(name, "fail", detail, "check the CA and the address")
    except (OSError, ValueError) as exc:
        detail = f"{address}: cannot connect ({exc})"
        return Check(name, "fail", detail, "check the address, the firewall and that the SuperLink runs")
    return Check(name, "pass", f"{address} answers with a certificate the CA signed ({version})")


def owner_only(name: str, key: Path) -> Check:
    mode = stat.S_IMODE(os.stat(key).st_mode)
    if mode & 0o077:
        return Check(
            name,
            "fail",
            f"{key} is readable by others (mode {mode:o})",
            f"chmod 600 {key}; if others may have read it, make a new key",
        )
    return Check(name, "pass", f"{key}, owner-only")
