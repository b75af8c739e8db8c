"""The Flower messages of a round, packed and unpacked in one place.

    query.foundation  coordinator -> site   "request": RoundRequest naming a foundation; with
                                            "files": the foundation's files when the site lacks it
                      site -> coordinator   "foundation": FoundationHeld; or "refusal": Refusal
    query.synthesize  coordinator -> site   "request": RoundRequest
                      site -> coordinator   "manifest": SyntheticSetManifest, "volumes": images,
                                            masks, labels; or "refusal": Refusal
    evaluate          coordinator -> site   "request": EvaluateRequest, "model": the model's files
                      site -> coordinator   "metrics": SiteMetricsReply; or "refusal": Refusal

Every site reply also carries "budget": the site's BudgetStatus. Documents travel as JSON text of
their versioned schema inside a ConfigRecord; arrays travel in ArrayRecords, which Flower chunks.
In a reply, each manifest item's `image_sha256` and `mask_sha256` are over that volume's raw
array bytes (C order), so the coordinator checks every volume it receives.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MessageType, MetricRecord, RecordDict
from numpy.typing import NDArray
from pydantic import ValidationError

from shared.schemas import (
    BudgetStatus,
    EvaluateRequest,
    FoundationHeld,
    Refusal,
    RoundRequest,
    SchemaError,
    SiteMetricsReply,
    SyntheticSetManifest,
)
from shared.schemas._base import describe_validation_error

# The message types, named once for both ends. Flower routes "<category>.<action>": the site's
# ClientApp registers `@app.query(FOUNDATION_ACTION)`, `@app.query(SYNTHESIZE_ACTION)` and
# `@app.evaluate()`; the coordinator sends FOUNDATION, SYNTHESIZE and EVALUATE.
FOUNDATION_ACTION = "foundation"
FOUNDATION = f"{MessageType.QUERY}.{FOUNDATION_ACTION}"
SYNTHESIZE_ACTION = "synthesize"
SYNTHESIZE = f"{MessageType.QUERY}.{SYNTHESIZE_ACTION}"
EVALUATE = MessageType.EVALUATE
_JSON = "json"


@dataclass(frozen=True)
class SyntheticVolumes:
    images: NDArray[np.float32]  # (N, D, H, W), window scaled to [-1, 1]
    masks: NDArray[np.uint8]  # (N, D, H, W), 0 or 1
    labels: NDArray[np.int64]  # (N,), index into the request's classes


@dataclass(frozen=True)
class SiteAnswer:
    """One site reply, unpacked. Exactly one of synthetic/metrics/foundation/refusal is set."""

    budget: BudgetStatus | None
    manifest: SyntheticSetManifest | None = None
    volumes: SyntheticVolumes | None = None
    metrics: SiteMetricsReply | None = None
    foundation: FoundationHeld | None = None
    refusal: Refusal | None = None


def array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _document(content: RecordDict, key: str) -> str:
    try:
        record = content.config_records[key]
        text = record[_JSON]
    except KeyError:
        raise SchemaError(f"the message has no {key!r} document") from None
    if not isinstance(text, str):
        raise SchemaError(f"the {key!r} document is not JSON text")
    return text


def _doc_record(text: str) -> ConfigRecord:
    return ConfigRecord({_JSON: text})


def synthesize_request(request: RoundRequest) -> RecordDict:
    return RecordDict({"request": _doc_record(request.to_json())})


def read_round_request(content: RecordDict) -> RoundRequest:
    return RoundRequest.parse(_document(content, "request"), source="the round request")


def foundation_offer(request: RoundRequest, files: dict[str, bytes] | None) -> RecordDict:
    """The round's foundation, named (files None: "do you hold it?") or sent with its files."""
    records: dict[str, ArrayRecord | MetricRecord | ConfigRecord] = {
        "request": _doc_record(request.to_json())
    }
    if files is not None:
        records["files"] = _files_record(files)
    return RecordDict(records)


def read_foundation_offer(content: RecordDict) -> tuple[RoundRequest, dict[str, bytes] | None]:
    request = RoundRequest.parse(_document(content, "request"), source="the foundation offer")
    if request.foundation_id is None:
        raise SchemaError("the foundation offer names no foundation")
    files = _read_files(content, "files", "foundation") if "files" in content.array_records else None
    return request, files


def evaluate_request(request: EvaluateRequest, files: dict[str, bytes]) -> RecordDict:
    return RecordDict({"request": _doc_record(request.to_json()), "model": _files_record(files)})


def read_evaluate_request(content: RecordDict) -> tuple[EvaluateRequest, dict[str, bytes]]:
    request = EvaluateRequest.parse(_document(content, "request"), source="the evaluate request")
    return request, _read_files(content, "model", "model")


def _files_record(files: dict[str, bytes]) -> ArrayRecord:
    # A file travels as a 1-D uint8 array, which Flower chunks like any other.
    return ArrayRecord({name: Array(np.frombuffer(data, dtype=np.uint8)) for name, data in files.items()})


def _read_files(content: RecordDict, key: str, what: str) -> dict[str, bytes]:
    try:
        record = content.array_records[key]
    except KeyError:
        raise SchemaError(f"the message carries no {what} files") from None
    files = {}
    for name, array in record.items():
        data = array.numpy()
        if data.dtype != np.uint8 or data.ndim != 1:
            raise SchemaError(f"{what} file {name!r} is not a byte array")
        files[name] = data.tobytes()
    return files


def _with_budget(
    records: dict[str, ArrayRecord | MetricRecord | ConfigRecord], budget: BudgetStatus | None
) -> RecordDict:
    if budget is not None:
        records["budget"] = _doc_record(budget.model_dump_json())
    return RecordDict(records)


def synthetic_reply(
    manifest: SyntheticSetManifest, volumes: SyntheticVolumes, budget: BudgetStatus | None
) -> RecordDict:
    arrays = ArrayRecord(
        {
            "images": Array(np.ascontiguousarray(volumes.images, dtype=np.float32)),
            "masks": Array(np.ascontiguousarray(volumes.masks, dtype=np.uint8)),
            "labels": Array(np.ascontiguousarray(volumes.labels, dtype=np.int64)),
        }
    )
    return _with_budget({"manifest": _doc_record(manifest.to_json()), "volumes": arrays}, budget)


def foundation_reply(held: FoundationHeld, budget: BudgetStatus | None) -> RecordDict:
    return _with_budget({"foundation": _doc_record(held.to_json())}, budget)


def metrics_reply(metrics: SiteMetricsReply, budget: BudgetStatus | None) -> RecordDict:
    return _with_budget({"metrics": _doc_record(metrics.to_json())}, budget)


def refusal_reply(refusal: Refusal) -> RecordDict:
    return _with_budget({"refusal": _doc_record(refusal.to_json())}, refusal.budget)


def _budget(text: str) -> BudgetStatus:
    try:
        return BudgetStatus.model_validate_json(text)
    except ValidationError as exc:
        raise SchemaError(
            describe_validation_error(exc, what="budget status", source="a site reply")
        ) from None


EXPECTED_RECORDS = {
    frozenset({"manifest", "volumes", "budget"}),
    frozenset({"manifest", "volumes"}),
    frozenset({"metrics", "budget"}),
    frozenset({"metrics"}),
    frozenset({"foundation", "budget"}),
    frozenset({"foundation"}),
    frozenset({"refusal", "budget"}),
    frozenset({"refusal"}),
}


def read_reply(content: RecordDict) -> SiteAnswer:
    """Unpack a site reply; anything but the documented records is a SchemaError."""
    names = frozenset(content.keys())
    if names not in EXPECTED_RECORDS:
        raise SchemaError(f"unexpected records in a site reply: {sorted(names)}")
    budget = _budget(_document(content, "budget")) if "budget" in names else None
    if "refusal" in names:
        return SiteAnswer(budget, refusal=Refusal.parse(_document(content, "refusal"), source="a refusal"))
    if "metrics" in names:
        return SiteAnswer(
            budget, metrics=SiteMetricsReply.parse(_document(content, "metrics"), source="a metrics reply")
        )
    if "foundation" in names:
        return SiteAnswer(
            budget,
            foundation=FoundationHeld.parse(_document(content, "foundation"), source="a foundation reply"),
        )
    manifest = SyntheticSetManifest.parse(_document(content, "manifest"), source="a synthetic set manifest")
    record = content.array_records["volumes"]
    if set(record.keys()) != {"images", "masks", "labels"}:
        raise SchemaError(f"the volumes record holds {sorted(record.keys())}, not images, masks, labels")
    volumes = SyntheticVolumes(
        images=record["images"].numpy(), masks=record["masks"].numpy(), labels=record["labels"].numpy()
    )
    return SiteAnswer(budget, manifest=manifest, volumes=volumes)
