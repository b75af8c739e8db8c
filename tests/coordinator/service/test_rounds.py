"""Rounds through the API without a federation: a launch that cannot reach the SuperLink, a round
left behind by a launch that died, and cancelling one that never started. The federation tests
launch and cancel real rounds."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from coordinator.config import load_coordinator_settings
from coordinator.coordinator_toml import write_coordinator_toml
from coordinator.federation.errors import FederationError
from coordinator.federation.launch import plan_round
from coordinator.federation.round_order import RoundOrder
from coordinator.federation.rounds import RoundFolder
from coordinator.foundation.catalogue import add_foundation, list_foundations
from coordinator.service.database import Database
from shared.federation.processes import free_port
from shared.foundation.files import FoundationError, foundation_files
from shared.schemas import FoundationCard
from tests.conftest import TEST_BOX, TEST_SPACING_MM, TinyFoundation
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
        # A round names a foundation the coordinator holds, at the round's box, for a backend
        # that starts from one; otherwise it is refused before anything is planned.
        order = {"epsilon": 2.0, "per_class": 1, "box": list(TEST_BOX), "spacing_mm": TEST_SPACING_MM}
        refusals = {
            "nosuch": (409, "no foundation 'nosuch' at this coordinator (it has chest-ct-cpu-v2)"),
            "chest-ct-cpu-v2": (409, "draws 48x48x64 boxes at 4 mm, the round asks"),
        }
        for n, (named, (code, said)) in enumerate(refusals.items()):
            answer = api.post(
                "/rounds",
                json={**order, "round_id": f"f{n}", "generator": "lesionstats", "foundation": named},
            )
            assert answer.status_code == code and said in answer.json()["detail"], answer.json()
        dpgan = api.post(
            "/rounds",
            json={**order, "round_id": "f9", "generator": "dpgan3d", "foundation": "chest-ct-cpu-v2"},
        )
        assert dpgan.status_code == 422 and "dpgan3d starts from no foundation" in dpgan.text

        listed = {r["round_id"]: r["state"] for r in api.get("/rounds").json()}
        assert listed == {"stale": "failed", "fresh": "cancelled", "r1": "failed"}  # no f0, f1, f9
        actions = [(e["action"], e["target"]) for e in api.get("/audit").json()]
        assert ("round.cancel", "fresh") in actions
    database.close()


def test_a_round_names_an_added_foundation_by_id_and_sha256(
    tmp_path: Path, tiny_foundation: TinyFoundation
) -> None:
    config = _coordinator(tmp_path)
    settings = load_coordinator_settings(config)
    added = add_foundation(settings, tiny_foundation.folder)
    assert add_foundation(settings, tiny_foundation.folder) == added  # adding it again changes nothing
    assert set(list_foundations(settings)) == {"chest-ct-cpu-v2", added.foundation_id}
    order = RoundOrder(
        epsilon=2.0,
        per_class=1,
        round_id="with-foundation",
        box=TEST_BOX,
        spacing_mm=TEST_SPACING_MM,
        generator="lesionstats",
        foundation=added.foundation_id,
    )
    plan = plan_round(settings, config, order).read_plan()
    assert (plan.request.foundation_id, plan.request.foundation_sha256) == (
        added.foundation_id,
        tiny_foundation.sha256,
    )
    assert foundation_files(Path(str(plan.foundation_folder))) == foundation_files(tiny_foundation.folder)

    # Another foundation under a taken id is refused; the one added stays as it was.
    other = tmp_path / "other"
    shutil.copytree(tiny_foundation.folder, other)
    card = FoundationCard.read(other / "foundation.json")
    card.model_copy(update={"description": "retrained"}).write(other / "foundation.json")
    with pytest.raises(FederationError, match=f"the foundation id '{added.foundation_id}' is taken"):
        add_foundation(settings, other)
    # A folder whose weights do not match its card is not added at all.
    broken = tmp_path / "broken"
    shutil.copytree(tiny_foundation.folder, broken)
    card.model_copy(update={"foundation_id": "broken"}).write(broken / "foundation.json")
    (broken / "denoiser.safetensors").write_bytes(b"not weights")
    with pytest.raises(FoundationError, match=r"denoiser\.safetensors does not match its card"):
        add_foundation(settings, broken)
    assert set(list_foundations(settings)) == {"chest-ct-cpu-v2", added.foundation_id}
    assert list_foundations(settings)[added.foundation_id].sha256 == tiny_foundation.sha256
