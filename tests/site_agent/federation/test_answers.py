"""What a site answers to round messages: checked against its settings and ledger, never twice charged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flwr.app import RecordDict

from shared.federation.messages import evaluate_request, read_reply, read_round_request, synthesize_request
from shared.schemas import EvaluateRequest, RoundRequest
from site_agent.federation.answers import answer_evaluate, answer_synthesize
from site_agent.privacy.ledger import Ledger
from tests.conftest import TEST_BOX, TEST_SPACING_MM
from tests.site_agent.conftest import TrainedSite
from tests.small_disk import small_disk


def _request(**changes: object) -> RecordDict:
    fields: dict[str, object] = {
        "round_id": "r7",
        "epsilon": 2.0,
        "per_class": 1,
        "volume_shape": TEST_BOX,
        "spacing_mm": (TEST_SPACING_MM,) * 3,
        "generator": "dpgan3d",
        **changes,
    }
    return synthesize_request(RoundRequest(**fields))  # type: ignore[arg-type]


def test_a_request_the_site_cannot_meet_is_declined_with_a_reason_and_nothing_is_spent(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    settings = trained_site.copy(tmp_path / "site").settings
    ledger_before = settings.paths.ledger.read_text()
    cases = {
        "invalid_request": [
            _request(volume_shape=(64, 64, 64), spacing_mm=(2.0, 2.0, 2.0)),
            _request(per_class=101),
            _request(classes=("normal", "thymoma")),
        ],
        "budget": [_request(epsilon=10.0)],  # composed with the 4 already spent: over the cap of 10
    }
    for reason, requests in cases.items():
        for content in requests:
            answer = read_reply(answer_synthesize(settings, content))
            assert answer.refusal is not None and answer.refusal.reason == reason, answer.refusal
            assert str(settings.paths.ledger.parent) not in answer.refusal.detail
            assert answer.budget is not None and answer.budget.cap == 10.0
    assert settings.paths.ledger.read_text() == ledger_before


_ASK_AGAIN_IN_A_FRESH_PROCESS = """
import json, sys
from pathlib import Path
from shared.federation.messages import read_reply, synthesize_request
from shared.schemas import RoundRequest
from site_agent.config import load_site_settings
from site_agent.federation.answers import answer_synthesize
settings = load_site_settings(Path(sys.argv[1]))
request = synthesize_request(RoundRequest.model_validate_json(sys.argv[2]))
answer = read_reply(answer_synthesize(settings, request))
assert answer.manifest is not None, answer.refusal
loaded = sorted(m for m in ("torch", "monai", "opacus") if m in sys.modules)
print(json.dumps({"images": [i.image_sha256 for i in answer.manifest.items], "loaded": loaded}))
"""


def test_the_same_round_asked_twice_is_trained_charged_and_released_once(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    site = trained_site.copy(tmp_path / "site")
    settings = site.settings
    first = read_reply(answer_synthesize(settings, _request()))
    second = read_reply(answer_synthesize(settings, _request()))
    assert first.manifest is not None and second.manifest is not None
    assert [i.image_sha256 for i in first.manifest.items] == [i.image_sha256 for i in second.manifest.items]
    runs = [r for r in Ledger(settings.paths.ledger).runs().values() if r.round_id == "r7"]
    assert len(runs) == 1 and len(runs[0].releases) == 1 and not runs[0].refusals
    assert first.budget == second.budget
    # Asked again in a ClientApp of its own, as Flower does it: answered from the release, no torch.
    request = read_round_request(_request()).model_dump_json()
    done = subprocess.run(
        [sys.executable, "-c", _ASK_AGAIN_IN_A_FRESH_PROCESS, str(site.config), request],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    third = json.loads(done.stdout.splitlines()[-1])
    assert third["images"] == [i.image_sha256 for i in first.manifest.items]
    assert third["loaded"] == []


def test_a_model_whose_files_do_not_match_its_hash_is_not_evaluated(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    settings = trained_site.copy(tmp_path / "site").settings
    metadata = json.dumps({"classes": list(settings.classes)}).encode()
    content = evaluate_request(
        EvaluateRequest(round_id="r7", model_sha256="0" * 64), {"metadata.json": metadata}
    )
    answer = read_reply(answer_evaluate(settings, content))
    assert answer.refusal is not None and answer.refusal.reason == "invalid_request"
    assert "sha256" in answer.refusal.detail


def test_a_disk_that_fills_up_mid_training_is_declined_in_words_and_resumed_once_there_is_room(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    settings = trained_site.copy(tmp_path / "site").settings
    with small_disk(settings.paths.models, 64):  # the checkpoints' folder: too small for one
        full = read_reply(answer_synthesize(settings, _request()))
    assert full.refusal is not None and full.refusal.reason == "internal"
    assert full.refusal.detail == "the site's disk is full (or over a quota): the site must free space"
    (run,) = [r for r in Ledger(settings.paths.ledger).runs().values() if r.round_id == "r7"]
    assert run.state == "running" and not run.releases  # charged before its first step, as always

    # Room again: the round asked again trains under the same reservation and releases once.
    again = read_reply(answer_synthesize(settings, _request()))
    assert again.manifest is not None, again.refusal
    (run,) = [r for r in Ledger(settings.paths.ledger).runs().values() if r.round_id == "r7"]
    assert run.state == "complete" and len(run.releases) == 1
