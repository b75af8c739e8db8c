"""The coordinator's Flower ServerApp: one round per Flower run, read from the round's folder."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from coordinator.federation.heartbeat import ServerAppHeartbeat
from coordinator.federation.round_runner import run_round
from coordinator.federation.rounds import RoundFolder

app = ServerApp()
log = logging.getLogger("coordinator")


@app.main()
def main(grid: Grid, context: Context) -> None:
    # What the round does shows in `flwr log <run>`, which reads this process's output.
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    round_dir = Path(str(context.run_config["round-dir"]))
    with ServerAppHeartbeat(RoundFolder(round_dir), context.run_id):
        report = run_round(grid, round_dir)
    log.info("round %s %s: %s", report.round_id, report.state, report.message)
