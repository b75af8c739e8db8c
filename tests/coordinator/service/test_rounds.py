"""Rounds through the API without a federation: a launch that cannot reach the SuperLink, a round
left behind by a launch that died, and cancelling one that never started. The federation tests
launch and cancel real rounds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from coordinator.config import load_coordinator_settings
from coordinator.coordinator_toml import write_coordinator_toml
from coordinator.federation.launch import plan_round
from coordinator.federation.round_order import RoundOrder
from coordinator.federation.rounds import RoundFolder
from coordinator.service.database import Database
from shared.federation.processes import free_port
from tests.conftest import TEST_BOX, TEST_SPACING_MM
from tests.coordinator.service.conftest import make_tokens, running_api


def _coordinator(tmp_path: Path) -> Path:
    config = write_coordinator_toml(tmp_path / "coordinator")
    # Insecure: rounds need no registered site, so planning works without a SuperLink; nothing
    # listens on the port, so starting a run cannot.
    text = config.read_text().replace("insecure = false", "insecure = true")
    config.write_text(text.replace("superlink_port = 9092", f"superlink_port = {free_port()}"))
    return config


def test_rounds_nothing_runs_any_more_end_failed_or_cancelled_never_stuck(tmp_path: Path) -> None:
    config = _coordinator(tmp_path)
    settings = load_coordinator_settings(config)
    # A launch that died after writing its plan, an hour ago, and one that died just now.
    for round_id in ("stale", "fresh"):
        order = RoundOrder(
            epsilon=2.0, per_class=1, round_id=round_id, box=TEST_BOX, spacing_mm=TEST_SPACING_MM
        )
        plan_round(settings, config, order)
    stale = RoundFolder.of(settings, "stale")
    report = json.loads(stale.report_path.read_text())
    report["updated_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    stale.report_path.write_text(json.dumps(report))

    database = Database.open(settings)
    tokens = make_tokens(database)
    headers = {"Authorization": f"Bearer {tokens['operator']}"}
    with (
        running_api(settings, config, database) as url,
        httpx.Client(base_url=url, headers=headers, timeout=60) as api,
    ):
        # Reconciled before the first request: the stale launch is failed, with the reason.
        shown = api.get("/rounds/stale").json()
        assert shown["state"] == "failed"
        assert shown["message"] == "the launch was interrupted before its Flower run started"
        assert api.get("/rounds/fresh").json()["state"] == "launched"  # may still be starting

        cancelled = api.post("/rounds/fresh/cancel")
        assert cancelled.status_code == 202
        assert cancelled.json()["state"] == "cancelled"
        assert cancelled.json()["message"] == "cancelled by test-operator before its Flower run started"
        again = api.post("/rounds/fresh/cancel")
        assert again.status_code == 409 and "cancelled already" in again.json()["detail"]
        assert api.post("/rounds/nosuch/cancel").status_code == 404

        refused = api.post(
            "/rounds",
            json={
                "round_id": "r1",
                "epsilon": 2.0,
                "per_class": 1,
                "box": list(TEST_BOX),
                "spacing_mm": TEST_SPACING_MM,
            },
        )
        assert refused.status_code == 503 and "Is the SuperLink running" in refused.json()["detail"]
        failed = api.get("/rounds/r1").json()
        assert failed["state"] == "failed" and failed["message"].startswith(
            "its Flower run could not be started"
        )
        taken = api.post("/rounds", json={"round_id": "r1", "epsilon": 2.0, "per_class": 1})
        assert taken.status_code == 409
        inf = api.post("/rounds", json={"round_id": "r2", "epsilon": "Infinity", "per_class": 1})
        assert inf.status_code == 422

        listed = {r["round_id"]: r["state"] for r in api.get("/rounds").json()}
        assert listed == {"stale": "failed", "fresh": "cancelled", "r1": "failed"}
        actions = [(e["action"], e["target"]) for e in api.get("/audit").json()]
        assert ("round.cancel", "fresh") in actions
    database.close()
