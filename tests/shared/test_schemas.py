import json

import pytest

from shared.schemas import (
    DatasetCard,
    Figure,
    GeneratorInfo,
    ManifestItem,
    PrivacySpend,
    RoundRequest,
    SchemaError,
    SiteMetricsReply,
    SyntheticSetManifest,
)

SHA = "a" * 64
PRIVACY = PrivacySpend(
    epsilon=2.0,
    delta=1e-6,
    accountant="rdp",
    noise_multiplier=2.6,  # costs 1.99 by RDP: the card adds up
    sample_rate=0.05,
    steps=400,
    max_grad_norm=1.0,
)
GENERATOR = GeneratorInfo(backend="dpgan3d", version="0.1.0", weights_sha256=SHA)


def _manifest(**changes: object) -> dict:
    base = SyntheticSetManifest(
        round_id="r-1",
        site_id="site_a",
        volume_shape=(32, 32, 32),
        spacing_mm=(4.0, 4.0, 4.0),
        privacy=PRIVACY,
        generator=GENERATOR,
        items=(
            ManifestItem(
                image="images/0.nii.gz",
                mask="masks/0.nii.gz",
                label="thymoma",
                image_sha256=SHA,
                mask_sha256=SHA,
            ),
        ),
    ).to_dict()
    base.update(changes)
    return base


def test_round_request_round_trips_through_json_with_its_version() -> None:
    request = RoundRequest(round_id="round-7", epsilon=1.5, per_class=8)
    text = request.to_json()
    assert json.loads(text)["schema_id"] == "fedsynth.round_request/2"
    assert RoundRequest.parse(text) == request


def test_a_newer_version_is_refused_with_advice() -> None:
    payload = RoundRequest(round_id="r", epsilon=1, per_class=1).to_dict()
    payload["schema_id"] = "fedsynth.round_request/3"
    with pytest.raises(SchemaError, match=r"version 3 is not supported.*upgrade"):
        RoundRequest.parse(payload)


def test_a_document_of_another_schema_is_refused() -> None:
    with pytest.raises(SchemaError, match=r"not 'fedsynth\.round_request'"):
        RoundRequest.parse(_manifest())


def test_errors_name_the_source_and_every_bad_field() -> None:
    with pytest.raises(SchemaError) as err:
        RoundRequest.parse(
            {"round_id": "r", "epsilon": -1, "per_class": 0, "patient_name": "x"}, source="req.json"
        )
    text = str(err.value)
    assert "req.json" in text and "epsilon" in text and "per_class" in text and "patient_name" in text


def test_a_round_cannot_ask_for_non_private_training() -> None:
    with pytest.raises(SchemaError, match="epsilon = inf"):
        RoundRequest.parse({"round_id": "r", "epsilon": float("inf"), "per_class": 1})


def test_round_request_rejects_delta_above_the_design_limit() -> None:
    with pytest.raises(SchemaError, match="delta"):
        RoundRequest.parse({"round_id": "r", "epsilon": 1, "per_class": 1, "delta": 1e-4})


@pytest.mark.parametrize("bad", ["../secret.nii.gz", "/etc/passwd", "images/../../x", "images//x"])
def test_manifest_paths_cannot_leave_the_dataset_folder(bad: str) -> None:
    item = _manifest()["items"][0] | {"image": bad}
    with pytest.raises(SchemaError, match="image"):
        SyntheticSetManifest.parse(_manifest(items=[item]))


def test_manifest_rejects_a_label_outside_the_classes_and_counts_per_class() -> None:
    item = _manifest()["items"][0] | {"label": "lymphoma"}
    with pytest.raises(SchemaError, match="lymphoma"):
        SyntheticSetManifest.parse(_manifest(items=[item]))
    counts = SyntheticSetManifest.parse(_manifest()).class_counts()
    assert counts["thymoma"] == 1 and sum(counts.values()) == 1


def test_dataset_card_round_trips_and_checks_class_names(tmp_path) -> None:
    card = DatasetCard(
        dataset_id="pooled",
        version=3,
        class_counts={"thymoma": 4, "normal": 2},
        volume_shape=(32, 32, 32),
        spacing_mm=(4, 4, 4),
    )
    path = tmp_path / "card.json"
    card.write(path)
    assert DatasetCard.read(path) == card
    with pytest.raises(SchemaError, match="unknown class 'lymphoma'"):
        DatasetCard.parse(card.to_dict() | {"class_counts": {"lymphoma": 1}})


def test_metrics_reply_confusion_must_match_classes_and_case_count() -> None:
    confusion = [[0] * 6 for _ in range(6)]
    confusion[1][1] = 3
    confusion[2][1] = 1
    reply = SiteMetricsReply(
        round_id="r",
        site_id="s",
        model_sha256=SHA,
        cases=4,
        accuracy=Figure(value=0.75, ci95_low=0.25, ci95_high=1.0, cases=4),
        balanced_accuracy=Figure(cases=4, note="only 4 held-out cases; 10 needed"),
        macro_auc=Figure(cases=4, note="only 4 held-out cases; 10 needed"),
        per_class={},
        confusion=confusion,
    )
    assert SiteMetricsReply.parse(reply.to_json()) == reply
    assert reply.accuracy.text() == "0.75 [0.25, 1.00] n=4"
    assert reply.macro_auc.text() == "n/a: only 4 held-out cases; 10 needed (n=4)"  # never 0.00
    with pytest.raises(SchemaError, match="version 1 is not supported"):
        SiteMetricsReply.parse(reply.to_dict() | {"schema_id": "fedsynth.site_metrics/1"})
    with pytest.raises(SchemaError, match="add up"):
        SiteMetricsReply.parse(reply.to_dict() | {"cases": 5})
    with pytest.raises(SchemaError, match="6x6"):
        SiteMetricsReply.parse(reply.to_dict() | {"confusion": [[4]]})
