"""Keeps the service's view of the federation current, and no round stuck.

Every `interval_s`, in one background thread:
1. every round not finished whose report has gone quiet is reconciled with Flower: a round whose
   ServerApp died mid-round is run again under its round id (up to `MAX_RERUNS` times); one whose
   run ended otherwise without finishing it, whose launch never started a run, or whose SuperLink
   stayed unreachable for longer than `UNREACHABLE_LIMIT_S` is marked failed with the reason (or
   cancelled, if an operator asked);
2. sites and rounds are recorded in the database;
3. new pooled versions and models are checked, uploaded to the object store and recorded.

It runs once before the API starts serving, after clearing what an interrupted upload left in the
store, so a restarted coordinator never shows a round as running that nothing runs.
"""

from __future__ import annotations

import logging
import threading
import time

from coordinator.config import CoordinatorSettings
from coordinator.errors import CoordinatorError
from coordinator.federation.errors import FederationError, SuperLinkUnavailable
from coordinator.federation.launch import RUN_CHECK_S, UNREACHABLE_LIMIT_S, end_round, is_quiet, reconcile
from coordinator.federation.rounds import RoundFolder, list_rounds
from coordinator.service.catalogue import remove_orphans, sync_artifacts, sync_records
from coordinator.service.database import Database
from coordinator.service.object_store import ObjectStore

log = logging.getLogger(__name__)


class Watcher:
    def __init__(
        self,
        settings: CoordinatorSettings,
        database: Database,
        store: ObjectStore,
        *,
        interval_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.database = database
        self.store = store
        self.interval_s = interval_s
        self._records = threading.Lock()  # routes refresh records too; one writer at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unreachable_since: float | None = None
        self._checked: dict[str, float] = {}  # round id -> when Flower was last asked about it
        self._last_error = ""

    def start(self) -> None:
        with self.database.session() as session:
            for location in remove_orphans(session, self.store):
                log.warning("removed %s from the object store: an upload interrupted earlier", location)
        self.run_once()
        self._thread = threading.Thread(target=self._loop, name="fedsynth-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def refresh_records(self) -> None:
        """Record sites and rounds now (cheap); routes that show them call this first."""
        with self._records, self.database.session() as session:
            sync_records(session, self.settings)

    def run_once(self) -> None:
        try:
            self._reconcile_rounds()
            self.refresh_records()
            sync_artifacts(self.database, self.settings, self.store)
            self._last_error = ""
        except Exception as exc:  # a bad file must not stop the watcher; say so once, not every pass
            message = f"{type(exc).__name__}: {exc}"
            if message != self._last_error:
                # Our own errors say what is wrong in words (a full store, a bad file): no traceback.
                trace = None if isinstance(exc, CoordinatorError) else exc
                log.error("could not bring the catalogue up to date: %s", message, exc_info=trace)
            self._last_error = message

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.run_once()

    def _reconcile_rounds(self) -> None:
        unfinished = [r for r in list_rounds(self.settings) if not r.finished]
        if not unfinished:
            self._unreachable_since = None
            return
        now = time.monotonic()
        for report in unfinished:
            folder = RoundFolder.of(self.settings, report.round_id)
            if report.flower_run_id is not None:
                quiet = is_quiet(folder, report)
                if not quiet or now - self._checked.get(report.round_id, 0.0) < RUN_CHECK_S:
                    continue  # its ServerApp shows it is alive, or was just asked about
                self._checked[report.round_id] = now
            try:
                reconcile(self.settings, folder)
                self._unreachable_since = None
            except SuperLinkUnavailable:
                self._unreachable_since = self._unreachable_since or now
                if now - self._unreachable_since > UNREACHABLE_LIMIT_S:
                    # The ServerApp runs inside the SuperLink's process tree: gone this long, it is dead.
                    end_round(folder, "failed", "the SuperLink stopped answering during the round")
            except FederationError as exc:
                log.warning("round %s: cannot ask Flower about its run: %s", report.round_id, exc)
