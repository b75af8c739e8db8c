"""`site-agent receive`: a DICOM C-STORE destination PACS can route chest CT to.

Each instance is written as received (its bytes untouched) to a temporary name and renamed into
`incoming/<series-ref>/`, so a half-written file is never seen. A watcher ingests a series once
nothing has arrived for it for `idle_seconds`; a series ingested (or already in the store) is
removed from the inbox, a refused one is moved to `incoming/refused/` for the hospital to review.
Only CT Image Storage is accepted; anything else is refused at association time.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from site_agent.config import SiteSettings
from site_agent.ingest.pipeline import ingest
from site_agent.ingest.pseudonyms import Pseudonyms, load_or_create_secret

log = logging.getLogger(__name__)
SUCCESS, OUT_OF_RESOURCES = 0x0000, 0xA700
REFUSED_FOLDER = "refused"


@dataclass
class Inbox:
    """What has arrived and when, per series; shared by the network threads and the watcher."""

    root: Path
    names: Pseudonyms
    last_arrival: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def store(self, event: Any) -> int:
        try:
            series_ref = self.names.series_ref(str(event.dataset.SeriesInstanceUID))
            instance_ref = self.names.file_ref(str(event.request.AffectedSOPInstanceUID))
            folder = self.root / series_ref
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{instance_ref}.tmp"
            tmp.write_bytes(event.encoded_dataset(include_meta=True))
            tmp.replace(folder / f"{instance_ref}.dcm")
        except Exception as exc:  # tell the sender to retry rather than dropping the instance
            log.error("could not store a received instance (%s)", type(exc).__name__)
            return OUT_OF_RESOURCES
        with self.lock:
            self.last_arrival[series_ref] = time.monotonic()
        return SUCCESS

    def quiet_series(self, idle_seconds: float) -> list[str]:
        now = time.monotonic()
        with self.lock:
            ready = [ref for ref, t in self.last_arrival.items() if now - t >= idle_seconds]
            for ref in ready:
                del self.last_arrival[ref]
        return ready


def _ingest_series(settings: SiteSettings, inbox: Inbox, series_ref: str) -> None:
    folder = inbox.root / series_ref
    report = ingest(settings, folder)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    report.write(settings.paths.logs / f"receive-{stamp}-{series_ref}.json")
    if report.accepted:
        case = report.accepted[0]
        log.info("%s: received series stored as %s (%s)", series_ref, case.case_id, case.status)
        shutil.rmtree(folder, ignore_errors=True)
    else:
        target = inbox.root / REFUSED_FOLDER / f"{series_ref}-{stamp}"
        target.parent.mkdir(parents=True, exist_ok=True)
        folder.replace(target)
        checks = ", ".join(sorted({r.check for r in report.refused})) or "no usable series"
        log.warning("%s: received series refused (%s); kept in the inbox for review", series_ref, checks)


def serve(settings: SiteSettings, *, stop: threading.Event, ready: threading.Event | None = None) -> None:
    """Run the C-STORE SCP until `stop` is set; ingest quiet series as they complete."""
    names = Pseudonyms(load_or_create_secret(settings.paths.store))
    inbox = Inbox(settings.paths.incoming, names)
    inbox.root.mkdir(parents=True, exist_ok=True)
    # Series left in the inbox by an earlier run (stopped or killed) are picked up again.
    for folder in inbox.root.iterdir():
        if folder.is_dir() and folder.name != REFUSED_FOLDER:
            inbox.last_arrival[folder.name] = 0.0
    ae = AE(ae_title=settings.receive.ae_title)
    ae.add_supported_context(CTImageStorage, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)  # C-ECHO: how PACS admins (and `doctor`) test a node
    server = ae.start_server(
        (settings.receive.host, settings.receive.port),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, inbox.store)],
    )
    assert server is not None  # block=False always returns the running server
    log.info(
        "receiving CT on %s:%d as %s", settings.receive.host, settings.receive.port, settings.receive.ae_title
    )
    if ready is not None:
        ready.set()
    try:
        while not stop.wait(0.2):
            for series_ref in inbox.quiet_series(settings.receive.idle_seconds):
                try:
                    _ingest_series(settings, inbox, series_ref)
                except Exception:  # one bad series must not stop the receiver
                    log.exception("%s: ingest of a received series failed", series_ref)
    finally:
        server.shutdown()


ALL_TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
]
