"""`site-agent doctor`: everything a hospital checks before a site goes live, and when something is
wrong, each answered pass, warn or fail with what to do.

Every check reads; none writes anything but a probe file it removes at once, and none sends
anything to the coordinator but a TLS handshake (no message, no data). A check that cannot run
because an earlier one failed (no settings file: nothing else can be read) is left out.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

from shared.doctor_checks import (
    CONNECT_TIMEOUT_S,
    Check,
    Status,
    certificate,
    clock,
    free_disk,
    owner_only,
    tls_endpoint,
)
from shared.errors import FedsynthError
from site_agent.config import SiteSettings, load_site_settings
from site_agent.ingest.pseudonyms import SECRET_FILE

SPEND_WARN_SHARE = 0.9


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
    return owner_only("site key", key)


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
    ca = settings.federation.ca_certificate
    if not ca.is_file():
        status: Status = "fail" if settings.federation.superlink else "warn"
        return [
            Check("coordinator CA", status, f"no CA certificate at {ca}", "put the operator's ca.pem there")
        ]
    return certificate("coordinator CA", ca, "ask the operator for the new CA")


def _superlink(settings: SiteSettings) -> Check:
    address = settings.federation.superlink
    if not address:
        return Check(
            "SuperLink", "warn", "not joined: [federation] superlink is empty", "set the operator's address"
        )
    return tls_endpoint("SuperLink", address, settings.federation.ca_certificate)


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
        *free_disk(_folders(settings)),
        _writable(settings),
    ]
    checks += [_key(settings), _torch(settings, gpu_present), clock(), *_certificate(settings)]
    checks += [_superlink(settings), _receiver(settings)]
    return checks
