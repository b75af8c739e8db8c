"""The ServerApp's own heartbeat, so that a dead ServerApp is noticed in seconds.

Flower notices that a ServerApp died (its SuperLink restarted, its process was killed) only when
Flower's heartbeat expires: a 30 s interval with a patience of two, so a round sat for 30 to 60 s
before its run was reported `finished:failed` and it could be run again (measured: 35 s after a
SuperLink restart and after a killed ServerApp, in tests/federation/test_round.py). The ServerApp
now rewrites `.serverapp-heartbeat` in its round's folder every HEARTBEAT_S, with its Flower run id.
A round whose report and heartbeat have both gone quiet is checked with Flower
(launch.is_quiet); one whose run Flower still calls running while its ServerApp has been silent
for SILENT_S is dead: its run is stopped and the round run again (launch.settle). A ServerApp
that was only frozen that long is stopped the same way, which costs a re-run and nothing else:
the re-run goes on from the last finished step, and sites asked again send the set they released.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from coordinator.federation.rounds import RoundFolder

HEARTBEAT_S = 2.0
SILENT_S = 12.0  # six missed beats: far beyond any pause of a live process on a loaded 2-core host

log = logging.getLogger(__name__)


class ServerAppHeartbeat:
    """`with ServerAppHeartbeat(folder, run_id):` beats for as long as the block runs."""

    def __init__(self, folder: RoundFolder, run_id: int) -> None:
        self.folder = folder
        self.run_id = run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="serverapp-heartbeat", daemon=True)

    def __enter__(self) -> ServerAppHeartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=HEARTBEAT_S * 2)

    def _beat(self) -> None:
        while True:
            try:
                self.folder.beat(self.run_id)
            except OSError as exc:  # a full disk: the watcher falls back on Flower's own heartbeat
                log.warning("cannot write the ServerApp heartbeat: %s", exc)
            if self._stop.wait(HEARTBEAT_S):
                return
