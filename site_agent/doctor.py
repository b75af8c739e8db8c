"""`site-agent doctor`: everything a hospital checks before a site goes live, and when something is
wrong, each answered pass, warn or fail with what to do.

Every check reads; none writes anything but a probe file it removes at once, and none sends
anything to the coordinator but a TLS handshake (no message, no data). A check that cannot run
because an earlier one failed (no settings file: nothing else can be read) is left out.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sqlite3
import ssl
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from shared.errors import FedsynthError
from site_agent.config import SiteSettings, load_site_settings
from site_agent.ingest.pseudonyms import SECRET_FILE

Status = Literal["pass", "warn", "fail"]
FREE_FAIL_BYTES = 1 << 30  # under 1 GiB free, ingestion and training cannot finish
FREE_WARN_BYTES = 10 << 30
CERT_WARN_DAYS = 30
SPEND_WARN_SHARE = 0.9
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def _settings(config: Path | None) -> tuple[SiteSettings | None, Check]:
    try:
        settings = load_site_settings(config)
    except FedsynthError as exc:
        return None, Check(
            "settings", "fail", str(exc), "fix the file it names (`site-agent config` shows it)"
        )
    return settings, Check("settings", "pass", f"site {settings.site_id}")


def _ledger(settings: SiteSettings) -> Check:
    from site_agent.privacy.budget import current_spend
    from site_agent.privacy.ledger import Ledger, LedgerError

    path = settings.paths.ledger
    if not path.exists():
        return Check("privacy ledger", "pass", "no spend recorded yet")
    try:
        events = len(Ledger(path).events())
        spend = current_spend(settings)
    except LedgerError as exc:
        return Check("privacy ledger", "fail", str(exc), "restore the ledger: `site-agent restore ARCHIVE`")
    detail = f"{events} events; epsilon spent {spend.epsilon:.3f} of the cap {spend.cap:g}"
    if spend.epsilon > SPEND_WARN_SHARE * spend.cap:
        return Check("privacy ledger", "warn", detail, "the budget is nearly spent: rounds will be refused")
    return Check("privacy ledger", "pass", detail)


def _store(settings: SiteSettings) -> Check:
    store = settings.paths.store
    index = store / "index.sqlite"
    if not index.exists():
        return Check("case store", "pass", "empty: nothing ingested yet")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True)) as db:
            sound = db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            files = [row[0] for row in db.execute("SELECT file FROM cases")]
    except sqlite3.Error as exc:
        sound, files = False, []
        reason = str(exc)
    else:
        reason = "its integrity check failed"
    if not sound:
        return Check(
            "case store", "fail", f"the index {index} is damaged ({reason})", "restore it from a backup"
        )
    missing = sum(not (store / name).is_file() for name in files)
    if missing:
        return Check(
            "case store",
            "fail",
            f"{missing} of {len(files)} case files the index names are missing from {store}",
            "restore the store folder from the hospital's backup, or ingest the studies again",
        )
    if files and not (store / SECRET_FILE).is_file():
        return Check(
            "case store",
            "fail",
            f"{len(files)} case(s) but no pseudonym secret ({SECRET_FILE}): studies ingested again "
            "would get new ids",
            "restore the secret: `site-agent restore ARCHIVE`",
        )
    return Check("case store", "pass", f"{len(files)} case file(s), index sound")


def _folders(settings: SiteSettings) -> list[Path]:
    paths = settings.paths
    return [paths.store, paths.models, paths.exports, paths.logs, paths.ledger.parent, paths.incoming]


def _disk(settings: SiteSettings) -> list[Check]:
    checks = []
    seen: set[int] = set()
    for folder in _folders(settings):
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        device = existing.stat().st_dev
        if device in seen:
            continue
        seen.add(device)
        free = shutil.disk_usage(existing).free
        detail = f"{free / (1 << 30):.1f} GiB free where {folder} lives"
        status: Status = "fail" if free < FREE_FAIL_BYTES else "warn" if free < FREE_WARN_BYTES else "pass"
        checks.append(
            Check("free disk", status, detail, "" if status == "pass" else "free space or grow the volume")
        )
    return checks


def _writable(settings: SiteSettings) -> Check:
    refused = []
    for folder in _folders(settings):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
                pass
        except OSError as exc:
            refused.append(f"{folder} ({exc.strerror})")
    if refused:
        return Check(
            "write permissions",
            "fail",
            "cannot write in " + ", ".join(refused),
            "give the agent's user ownership of these folders",
        )
    return Check("write permissions", "pass", "the agent can write in every folder of [paths]")


def _key(settings: SiteSettings) -> Check:
    key = settings.federation.private_key
    if not key.is_file():
        status: Status = "fail" if settings.federation.superlink else "warn"
        return Check("site key", status, f"no private key at {key}", "make one: `site-agent keygen`")
    mode = stat.S_IMODE(key.stat().st_mode)
    if mode & 0o077:
        return Check(
            "site key",
            "fail",
            f"{key} is readable by others (mode {mode:o})",
            f"chmod 600 {key}; if others may have read it, make a new key and register it again",
        )
    return Check("site key", "pass", f"{key}, owner-only")


def _torch(settings: SiteSettings, gpu_present: Callable[[], bool]) -> Check:
    try:
        import torch
    except ImportError as exc:
        return Check("PyTorch and GPU", "fail", f"torch cannot be imported ({exc})", "run scripts/setup")
    build = (
        f"torch {torch.__version__} ({'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU build'})"
    )
    setting = settings.compute.device
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        memory = torch.cuda.get_device_properties(0).total_memory / (1 << 30)
        return Check("PyTorch and GPU", "pass", f"{build}; {name}, {memory:.0f} GiB")
    if gpu_present():
        return Check(
            "PyTorch and GPU",
            "fail",
            f"{build}, but this machine has an NVIDIA GPU that torch cannot use",
            "install a CUDA build: FEDSYNTH_TORCH='torch==2.13.0 --index-url "
            "https://download.pytorch.org/whl/cu128' scripts/setup (and check the driver with nvidia-smi)",
        )
    if setting.startswith("cuda"):
        return Check(
            "PyTorch and GPU",
            "fail",
            f"{build}; [compute] device is {setting!r} but no GPU",
            'set device = "auto"',
        )
    return Check("PyTorch and GPU", "warn", f"{build}; no GPU: training runs on the CPU (CPU box only)")


def _nvidia_present() -> bool:
    return Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia").exists()


def _certificate(settings: SiteSettings) -> list[Check]:
    from cryptography import x509

    ca = settings.federation.ca_certificate
    if not ca.is_file():
        status: Status = "fail" if settings.federation.superlink else "warn"
        return [
            Check("coordinator CA", status, f"no CA certificate at {ca}", "put the operator's ca.pem there")
        ]
    try:
        cert = x509.load_pem_x509_certificate(ca.read_bytes())
    except ValueError as exc:
        return [
            Check(
                "coordinator CA", "fail", f"{ca} is not a PEM certificate ({exc})", "ask the operator again"
            )
        ]
    now = datetime.now(UTC)
    left = (cert.not_valid_after_utc - now).days
    checks = []
    if now < cert.not_valid_before_utc:
        checks.append(
            Check(
                "clock",
                "fail",
                f"this machine's clock ({now:%Y-%m-%d %H:%M} UTC) is before the CA was made "
                f"({cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC)",
                "set the clock (enable NTP)",
            )
        )
    if now > cert.not_valid_after_utc:
        ago = (now - cert.not_valid_after_utc).days
        checks.append(
            Check("coordinator CA", "fail", f"{ca} expired {ago} days ago", "ask the operator for the new CA")
        )
    elif left < CERT_WARN_DAYS:
        checks.append(
            Check("coordinator CA", "warn", f"{ca} expires in {left} days", "ask the operator about rotation")
        )
    else:
        checks.append(Check("coordinator CA", "pass", f"valid until {cert.not_valid_after_utc:%Y-%m-%d}"))
    return checks


def _clock() -> Check:
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


def _superlink(settings: SiteSettings) -> Check:
    address = settings.federation.superlink
    if not address:
        return Check(
            "SuperLink",
            "warn",
            "not joined: [federation] superlink is empty",
            "set it to the operator's address",
        )
    host, _, port = address.rpartition(":")
    try:
        context = ssl.create_default_context(cafile=str(settings.federation.ca_certificate))
        with (
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        return Check(
            "SuperLink",
            "fail",
            f"{address}: its certificate is not trusted ({exc.verify_message})",
            "check the CA and the address with the operator",
        )
    except (OSError, ValueError) as exc:
        return Check(
            "SuperLink",
            "fail",
            f"{address}: cannot connect ({exc})",
            "check the address, the firewall (outbound) and that the SuperLink runs",
        )
    return Check("SuperLink", "pass", f"{address} answers with a certificate the CA signed ({version})")


def _receiver(settings: SiteSettings) -> Check:
    receive = settings.receive
    where = f"{receive.host}:{receive.port}"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((receive.host, receive.port))
        except OSError:
            pass
        else:
            return Check("DICOM receiver", "pass", f"{where} is free for `site-agent receive`")
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title="FEDSYNTH-DOCTOR")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = CONNECT_TIMEOUT_S
    association = ae.associate(receive.host, receive.port, ae_title=receive.ae_title)
    if association.is_established:
        answer = association.send_c_echo()
        association.release()
        if answer and answer.Status == 0:
            return Check("DICOM receiver", "pass", f"{where} answers C-ECHO as {receive.ae_title}")
    return Check(
        "DICOM receiver",
        "fail",
        f"{where} is taken by something that does not answer C-ECHO as {receive.ae_title}",
        "stop what holds the port, or change [receive] port",
    )


def run_checks(config: Path | None, *, gpu_present: Callable[[], bool] = _nvidia_present) -> list[Check]:
    settings, loaded = _settings(config)
    if settings is None:
        return [loaded]
    checks = [
        loaded,
        _ledger(settings),
        _store(settings),
        *_disk(settings),
        _writable(settings),
        _key(settings),
    ]
    checks.append(_torch(settings, gpu_present))
    checks += [_clock(), *_certificate(settings), _superlink(settings), _receiver(settings)]
    return checks
