"""The coordinator stores a site's set only when every check passes; each check can fail alone."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from coordinator.federation.validation import ReplyRejected, validate_synthetic
from shared.federation.messages import SiteAnswer, SyntheticVolumes
from shared.schemas import RoundRequest
from tests.shared.test_federation_messages import _volumes, manifest_for

REQUEST = RoundRequest(
    round_id="r1",
    epsilon=3.0,
    per_class=1,
    volume_shape=(16, 16, 16),
    spacing_mm=(4.0, 4.0, 4.0),
    generator="dpgan3d",
)


def _answer(volumes: SyntheticVolumes | None = None, **manifest_changes: object) -> SiteAnswer:
    good = _volumes()
    manifest = manifest_for(good).model_copy(update=manifest_changes)
    return SiteAnswer(None, manifest=manifest, volumes=volumes or good)


def test_a_good_set_passes_and_becomes_items_named_after_the_site() -> None:
    items = validate_synthetic(_answer(), REQUEST, "site_a")
    assert [i.name for i in items][:2] == ["site_a-00000", "site_a-00001"] and len(items) == 6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: dataclasses.replace(v, images=v.images.astype(np.float64)), "images are float64"),
        (lambda v: dataclasses.replace(v, images=v.images[:, :8]), "expected float32"),
        (lambda v: dataclasses.replace(v, images=v.images * 3), r"inside \[-1, 1\]"),
        (lambda v: dataclasses.replace(v, masks=v.masks * 2), "0 or 1"),
        (lambda v: dataclasses.replace(v, labels=np.zeros(6, np.int64)), "samples per class"),
        (lambda v: dataclasses.replace(v, images=np.roll(v.images, 1, axis=0)), "sha256"),
    ],
)
def test_each_array_check_rejects(change: object, message: str) -> None:
    with pytest.raises(ReplyRejected, match=message):
        validate_synthetic(_answer(change(_volumes())), REQUEST, "site_a")  # type: ignore[operator]


def test_the_manifest_must_match_the_request_and_the_authenticated_site() -> None:
    with pytest.raises(ReplyRejected, match="came from 'site_b'"):
        validate_synthetic(_answer(), REQUEST, "site_b")
    with pytest.raises(ReplyRejected, match="not 'r1'"):
        validate_synthetic(_answer(round_id="r0"), REQUEST, "site_a")
    spend = manifest_for(_volumes()).privacy
    with pytest.raises(ReplyRejected, match=r"more than the 3 asked"):
        validate_synthetic(_answer(privacy=spend.model_copy(update={"epsilon": 3.5})), REQUEST, "site_a")
    with pytest.raises(ReplyRejected, match="not made with differential privacy"):
        validate_synthetic(
            _answer(privacy=spend.model_copy(update={"noise_multiplier": 0.0})), REQUEST, "site_a"
        )


def test_a_card_claiming_less_epsilon_than_its_mechanism_costs_is_rejected() -> None:
    spend = manifest_for(_volumes()).privacy
    # A tampered card: the site shows noise 1.1 (which costs about 6.9 over these 400 steps) but
    # claims the 2.0 that noise 2.6 would have cost.
    tampered = spend.model_copy(update={"noise_multiplier": 1.1})
    with pytest.raises(ReplyRejected, match=r"site site_a claims epsilon 2\.000, .* costs epsilon 6\.92"):
        validate_synthetic(_answer(privacy=tampered), REQUEST, "site_a")
    fewer_steps = spend.model_copy(update={"steps": 1200})  # three times the steps it admits to
    with pytest.raises(ReplyRejected, match=r"claims epsilon 2\.000"):
        validate_synthetic(_answer(privacy=fewer_steps), REQUEST, "site_a")
    unknown = spend.model_copy(update={"accountant": "gdp"})
    with pytest.raises(ReplyRejected, match="cannot be recomputed"):
        validate_synthetic(_answer(privacy=unknown), REQUEST, "site_a")
    honest_but_generous = spend.model_copy(update={"epsilon": 2.5})  # over-claiming is allowed
    assert len(validate_synthetic(_answer(privacy=honest_but_generous), REQUEST, "site_a")) == 6
