"""Round messages survive packing and unpacking, and a reply with anything unplanned is refused."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ConfigRecord, RecordDict

from shared.classes import DEFAULT_CLASSES
from shared.federation.messages import (
    SyntheticVolumes,
    array_sha256,
    evaluate_request,
    metrics_reply,
    read_evaluate_request,
    read_reply,
    read_round_request,
    refusal_reply,
    synthesize_request,
    synthetic_reply,
)
from shared.schemas import (
    BudgetStatus,
    ClassMetrics,
    EvaluateRequest,
    Figure,
    ManifestItem,
    Refusal,
    RoundRequest,
    SchemaError,
    SiteMetricsReply,
    SyntheticSetManifest,
)
from tests.shared.test_schemas import GENERATOR, PRIVACY

BUDGET = BudgetStatus(spent=float("inf"), cap=10.0, delta=1e-5, accountant="rdp")


def _volumes(n: int = 6) -> SyntheticVolumes:
    rng = np.random.default_rng(0)
    return SyntheticVolumes(
        images=rng.uniform(-1, 1, (n, 16, 16, 16)).astype(np.float32),
        masks=(rng.random((n, 16, 16, 16)) > 0.9).astype(np.uint8),
        labels=np.arange(n, dtype=np.int64) % 6,
    )


def manifest_for(
    volumes: SyntheticVolumes, *, site: str = "site_a", round_id: str = "r1"
) -> SyntheticSetManifest:
    items = tuple(
        ManifestItem(
            image=f"images/{site}-{n:05d}.nii.gz",
            mask=f"masks/{site}-{n:05d}.nii.gz",
            label=DEFAULT_CLASSES[int(k)],
            image_sha256=array_sha256(volumes.images[n]),
            mask_sha256=array_sha256(volumes.masks[n]),
        )
        for n, k in enumerate(volumes.labels)
    )
    return SyntheticSetManifest(
        round_id=round_id,
        site_id=site,
        volume_shape=volumes.images.shape[1:],
        spacing_mm=(4.0, 4.0, 4.0),
        privacy=PRIVACY,
        generator=GENERATOR,
        items=items,
    )


def test_a_round_request_and_a_synthetic_reply_round_trip() -> None:
    request = RoundRequest(round_id="r1", epsilon=3.0, per_class=1, volume_shape=(16, 16, 16))
    assert read_round_request(synthesize_request(request)) == request
    volumes = _volumes()
    manifest = manifest_for(volumes)
    answer = read_reply(synthetic_reply(manifest, volumes, BUDGET))
    assert answer.manifest == manifest and answer.budget == BUDGET
    assert answer.volumes is not None
    np.testing.assert_array_equal(answer.volumes.images, volumes.images)
    np.testing.assert_array_equal(answer.volumes.masks, volumes.masks)
    assert answer.volumes.labels.dtype == np.int64


def test_metrics_refusals_and_model_files_round_trip() -> None:
    metrics = SiteMetricsReply(
        round_id="r1",
        site_id="site_a",
        model_sha256="a" * 64,
        cases=1,
        accuracy=Figure(cases=1, note="only 1 held-out cases; 10 needed"),
        balanced_accuracy=Figure(cases=1, note="only 1 held-out cases; 10 needed"),
        macro_auc=Figure(cases=1, note="only 1 held-out cases; 10 needed"),
        per_class={c: ClassMetrics() for c in DEFAULT_CLASSES},
        confusion=tuple(tuple(1 if (i, j) == (0, 0) else 0 for j in range(6)) for i in range(6)),
    )
    assert read_reply(metrics_reply(metrics, None)).metrics == metrics
    refusal = Refusal(round_id="r1", site_id="site_a", reason="budget", detail="over the cap", budget=BUDGET)
    answer = read_reply(refusal_reply(refusal))
    assert answer.refusal == refusal and answer.budget == BUDGET
    files = {"metadata.json": b'{"a": 1}', "classifier.safetensors": bytes(range(256)) * 10}
    request, back = read_evaluate_request(
        evaluate_request(EvaluateRequest(round_id="r1", model_sha256="b" * 64), files)
    )
    assert back == files and request.round_id == "r1"


def test_a_reply_with_an_extra_record_or_a_malformed_document_is_refused() -> None:
    volumes = _volumes()
    content = synthetic_reply(manifest_for(volumes), volumes, BUDGET)
    content["notes"] = ConfigRecord({"json": "{}"})
    with pytest.raises(SchemaError, match="unexpected records"):
        read_reply(content)
    with pytest.raises(SchemaError, match=r"fedsynth\.site_metrics"):
        read_reply(RecordDict({"metrics": ConfigRecord({"json": '{"cases": -1}'})}))
