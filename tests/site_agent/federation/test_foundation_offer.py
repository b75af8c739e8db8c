"""A round's foundation reaches a site from the coordinator (`query.foundation`): the site says
whether it holds it, caches what it is sent only if every file matches the round's sha256, and a
round that names a foundation trains from that cached copy, never from the site's own settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.federation.messages import foundation_offer, read_reply, synthesize_request
from shared.foundation.files import foundation_files
from shared.schemas import RoundRequest
from site_agent.config import SiteSettings
from site_agent.federation.answers import answer_foundation, answer_synthesize
from site_agent.privacy.composition_memo import memo_path
from site_agent.privacy.ledger import Ledger, total_spend
from tests.conftest import TEST_BOX, TEST_SPACING_MM, TinyFoundation
from tests.site_agent.conftest import TrainedSite


def _lesionstats_site(trained_site: TrainedSite, folder: Path, **generator: object) -> SiteSettings:
    settings = trained_site.copy(folder).settings
    update = {"backend": "lesionstats", "foundation": None, "foundation_sha256": None, **generator}
    return settings.model_copy(update={"generator": settings.generator.model_copy(update=update)})


def _request(tiny: TinyFoundation, **changes: object) -> RoundRequest:
    fields: dict[str, object] = {
        "round_id": "r-f",
        "epsilon": 2.0,
        "per_class": 1,
        "volume_shape": TEST_BOX,
        "spacing_mm": (TEST_SPACING_MM,) * 3,
        "generator": "lesionstats",
        "foundation_id": "tiny",
        "foundation_sha256": tiny.sha256,
        **changes,
    }
    return RoundRequest(**fields)  # type: ignore[arg-type]


def test_a_site_is_sent_the_foundation_once_checks_it_caches_it_and_trains_from_it(
    trained_site: TrainedSite, tiny_foundation: TinyFoundation, tmp_path: Path
) -> None:
    settings = _lesionstats_site(trained_site, tmp_path / "site")
    request = _request(tiny_foundation)
    # Without the foundation, the site cannot make the round's set, and spends nothing trying.
    refused = read_reply(answer_synthesize(settings, synthesize_request(request))).refusal
    assert refused is not None and refused.reason == "invalid_request" and "not held here" in refused.detail
    assert (
        Ledger(settings.paths.ledger).runs().keys()
        == Ledger(trained_site.settings.paths.ledger).runs().keys()
    )

    asked = read_reply(answer_foundation(settings, foundation_offer(request, None))).foundation
    assert asked is not None and not asked.held and asked.site_id == settings.site_id
    sent = read_reply(
        answer_foundation(settings, foundation_offer(request, foundation_files(tiny_foundation.folder)))
    )
    assert sent.foundation is not None and sent.foundation.held
    cached = settings.paths.foundations / tiny_foundation.sha256
    assert foundation_files(cached) == foundation_files(tiny_foundation.folder)
    again = read_reply(answer_foundation(settings, foundation_offer(request, None))).foundation
    assert again is not None and again.held  # asked next round, it says so and is sent nothing
    # A cached folder that is no longer what its name says (edited by hand) is replaced when sent.
    (cached / "foundation.json").write_text("{}")
    stale = read_reply(answer_foundation(settings, foundation_offer(request, None))).foundation
    assert stale is not None and not stale.held
    offer = foundation_offer(request, foundation_files(tiny_foundation.folder))
    resent = read_reply(answer_foundation(settings, offer)).foundation
    assert resent is not None and resent.held
    assert foundation_files(cached) == foundation_files(tiny_foundation.folder)

    answer = read_reply(answer_synthesize(settings, synthesize_request(request)))
    assert answer.manifest is not None, answer.refusal
    assert answer.manifest.generator.backend == "lesionstats"
    assert answer.manifest.generator.foundation_sha256 == tiny_foundation.sha256


def test_a_foundation_whose_files_do_not_match_the_round_is_refused_and_nothing_is_cached(
    trained_site: TrainedSite, tiny_foundation: TinyFoundation, tmp_path: Path
) -> None:
    settings = _lesionstats_site(trained_site, tmp_path / "site")
    files = foundation_files(tiny_foundation.folder)
    denoiser = bytearray(files["denoiser.safetensors"])
    denoiser[-1] ^= 0xFF  # one flipped bit in the weights, the card unchanged
    offers = {
        "a weight file changed": (
            _request(tiny_foundation),
            {**files, "denoiser.safetensors": bytes(denoiser)},
        ),
        "a file missing": (
            _request(tiny_foundation),
            {k: v for k, v in files.items() if k != "autoencoder.safetensors"},
        ),
        "a stray file": (_request(tiny_foundation), {**files, "../escape.txt": b"x"}),
        "another sha256": (_request(tiny_foundation, foundation_sha256="0" * 64), files),
    }
    for what, (request, sent) in offers.items():
        answer = read_reply(answer_foundation(settings, foundation_offer(request, sent)))
        assert answer.refusal is not None and answer.refusal.reason == "invalid_request", what
        assert "does not match its sha256" in answer.refusal.detail, what
    root = settings.paths.foundations
    assert not root.exists() or list(root.iterdir()) == []  # no foundation, no half-written folder
    assert not (settings.paths.foundations.parent / "escape.txt").exists()


def test_a_site_that_pins_its_foundation_refuses_any_other(
    trained_site: TrainedSite, tiny_foundation: TinyFoundation, tmp_path: Path
) -> None:
    settings = _lesionstats_site(trained_site, tmp_path / "site", foundation_sha256="a" * 64)
    request = _request(tiny_foundation)
    offered = answer_foundation(settings, foundation_offer(request, foundation_files(tiny_foundation.folder)))
    asked = answer_synthesize(settings, synthesize_request(request))
    for answer in (read_reply(offered), read_reply(asked)):
        assert answer.refusal is not None
        assert answer.refusal.detail == "the round's foundation is not the one this site accepts"
    assert not settings.paths.foundations.exists()


def test_a_site_whose_generator_needs_no_foundation_refuses_a_round_that_names_one(
    trained_site: TrainedSite, tiny_foundation: TinyFoundation, tmp_path: Path
) -> None:
    settings = trained_site.copy(tmp_path / "site").settings  # dpgan3d
    request = _request(tiny_foundation, generator="dpgan3d")
    answer = read_reply(answer_foundation(settings, foundation_offer(request, None)))
    assert answer.refusal is not None and "starts from no foundation" in answer.refusal.detail


_ASK_IN_A_FRESH_PROCESS = """
import json, sys
from pathlib import Path
from shared.federation.messages import foundation_offer, read_reply
from shared.schemas import RoundRequest
from site_agent.config import load_site_settings
from site_agent.federation.answers import answer_foundation
settings = load_site_settings(Path(sys.argv[1]))
request = RoundRequest.model_validate_json(sys.argv[2])
answer = read_reply(answer_foundation(settings, foundation_offer(request, None)))
assert answer.foundation is not None and answer.budget is not None, answer
loaded = sorted(m for m in ("torch", "monai", "opacus") if m in sys.modules)
print(json.dumps({"held": answer.foundation.held, "spent": answer.budget.spent, "loaded": loaded}))
"""


def test_the_foundation_question_is_answered_without_torch_once_the_budget_is_known(
    trained_site: TrainedSite, tiny_foundation: TinyFoundation, tmp_path: Path
) -> None:
    """Flower starts a process per message: the question must not pay for torch, MONAI and Opacus.
    Its reply still carries the budget the accountant composed over the ledger's runs."""
    site = trained_site.copy(tmp_path / "site")
    memo = memo_path(site.settings.paths.ledger)
    memo.unlink(missing_ok=True)  # the first answer composes: the accountant, so Opacus, is needed
    env = {**os.environ, "FEDSYNTH_GENERATOR__BACKEND": "lesionstats"}
    request = _request(tiny_foundation).model_dump_json()

    def ask() -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-c", _ASK_IN_A_FRESH_PROCESS, str(site.config), request],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout.splitlines()[-1]))

    first, second = ask(), ask()
    privacy = site.settings.privacy
    runs = Ledger(site.settings.paths.ledger).runs()
    composed = total_spend(runs, delta=privacy.delta, accountant=privacy.accountant, cap=privacy.epsilon_cap)
    assert composed.epsilon > 0  # the fixture's site has trained under DP
    assert first["spent"] == second["spent"] == pytest.approx(composed.epsilon)
    assert first["held"] is False and "opacus" in first["loaded"]  # type: ignore[operator]
    assert second["loaded"] == []
