"""What the site answers to each round message, decided here and only here.

`answer_foundation` says whether the site holds the public foundation the round names, and caches
it, verified, when the coordinator sends its files. `answer_synthesize` checks the request against
this site's settings and ledger, trains (or resumes, or reuses) the round's DP generator, samples,
audits, keeps the local copy and records the release, then replies with exactly the volumes of that
local copy. `answer_evaluate` scores a received model on the held-out real cases and replies with
metrics only.

Torch, MONAI and Opacus are imported inside the answers that train, sample or score: Flower starts
a new ClientApp process for every message, and those imports cost it about 7 CPU seconds and
450 MB, which the foundation question, a refusal and a request asked again do not need.

Anything that goes wrong becomes a Refusal with a fixed sentence written here: an exception's own
text stays in the site's log, because it can name local paths.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import RecordDict

from shared.crop_box import box_text
from shared.diagnosis.model_files import MODEL_FILES, ModelError, model_sha256
from shared.disk_errors import disk_refused
from shared.errors import FedsynthError
from shared.federation.messages import (
    SyntheticVolumes,
    array_sha256,
    foundation_reply,
    metrics_reply,
    read_evaluate_request,
    read_foundation_offer,
    read_round_request,
    refusal_reply,
    synthetic_reply,
)
from shared.foundation.files import FoundationError
from shared.schemas import (
    BudgetStatus,
    FoundationHeld,
    ManifestItem,
    Refusal,
    RefusalReason,
    RoundRequest,
    SchemaError,
    SyntheticSetManifest,
)
from site_agent.config import SiteSettings
from site_agent.errors import SiteRefusal
from site_agent.federation.answer_slots import answer_slot
from site_agent.generator.foundation_cache import (
    accepted,
    cached_foundation,
    receive_foundation,
    with_round_foundation,
)
from site_agent.privacy.budget import current_spend
from site_agent.privacy.ledger import Ledger
from site_agent.synthetic.released import released_copy

if TYPE_CHECKING:
    from site_agent.generator.training_run import TrainedRun

log = logging.getLogger(__name__)

TRAINING_POLL_S = 2.0


class Declined(SiteRefusal):
    """The site declines a request; `reason` and the message are what the coordinator is told."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.public_detail = detail


def budget_status(settings: SiteSettings) -> BudgetStatus | None:
    try:
        spend = current_spend(settings)
    except FedsynthError:
        return None  # a damaged ledger blocks everything; the refusal says so
    return BudgetStatus(spent=spend.epsilon, cap=spend.cap, delta=spend.delta, accountant=spend.accountant)


def answer_synthesize(settings: SiteSettings, content: RecordDict) -> RecordDict:
    round_id = "unknown"
    try:
        request = read_round_request(content)
        round_id = request.round_id
        check_request(settings, request)
        with answer_slot(settings.compute.answers_at_once):
            manifest, volumes = synthesize(settings, request)
        log.info("round %s: replying with %d synthetic volumes", round_id, len(volumes.labels))
        return synthetic_reply(manifest, volumes, budget_status(settings))
    except Exception as exc:  # every failure becomes a refusal the coordinator can read
        return refusal_reply(_refusal(settings, round_id, exc))


def answer_foundation(settings: SiteSettings, content: RecordDict) -> RecordDict:
    round_id = "unknown"
    try:
        request, files = read_foundation_offer(content)
        round_id = request.round_id
        check_request(settings, request)
        accepted(settings, request)
        assert request.foundation_id is not None and request.foundation_sha256 is not None
        held = cached_foundation(settings, request.foundation_sha256) is not None
        if not held and files is not None:
            receive_foundation(settings, request, files)
            held = True
            log.info("round %s: received and cached the foundation %s", round_id, request.foundation_id)
        answer = FoundationHeld(
            round_id=round_id,
            site_id=settings.site_id,
            foundation_id=request.foundation_id,
            foundation_sha256=request.foundation_sha256,
            held=held,
        )
        return foundation_reply(answer, budget_status(settings))
    except Exception as exc:
        return refusal_reply(_refusal(settings, round_id, exc))


def answer_evaluate(settings: SiteSettings, content: RecordDict) -> RecordDict:
    round_id = "unknown"
    try:
        request, files = read_evaluate_request(content)
        round_id = request.round_id
        if not set(files) <= MODEL_FILES or "metadata.json" not in files:
            raise Declined("invalid_request", f"the model files {sorted(files)} are not a diagnostic model")
        with tempfile.TemporaryDirectory(prefix="fedsynth-model-") as tmp:
            folder = Path(tmp)
            for name, data in files.items():
                (folder / name).write_bytes(data)
            if model_sha256(folder) != request.model_sha256:
                raise Declined("invalid_request", "the model's files do not match its sha256")
            with answer_slot(settings.compute.answers_at_once):
                from site_agent.evaluation import evaluate_on_holdout

                metrics = evaluate_on_holdout(settings, folder, round_id=request.round_id)
        log.info("round %s: scored the model on %d held-out cases", round_id, metrics.cases)
        return metrics_reply(metrics, budget_status(settings))
    except Exception as exc:
        return refusal_reply(_refusal(settings, round_id, exc))


def check_request(settings: SiteSettings, request: RoundRequest) -> None:
    box = settings.preprocessing.box
    spacing = settings.preprocessing.spacing_mm
    if request.classes != settings.classes:
        raise Declined("invalid_request", f"this site's classes are {list(settings.classes)}")
    if tuple(request.volume_shape) != box or any(s != spacing for s in request.spacing_mm):
        raise Declined(
            "invalid_request",
            f"this site makes {box_text(box)} volumes at {spacing:g} mm, not what was asked",
        )
    if request.generator != settings.generator.backend:
        raise Declined("invalid_request", f"this site's generator is {settings.generator.backend!r}")
    if request.foundation_id is not None and settings.generator.backend == "dpgan3d":
        raise Declined("invalid_request", "this site's generator (dpgan3d) starts from no foundation")
    if request.per_class > settings.federation.max_per_class:
        raise Declined(
            "invalid_request",
            f"{request.per_class} samples per class is over this site's limit of "
            f"{settings.federation.max_per_class}",
        )


def synthesize(
    settings: SiteSettings, request: RoundRequest
) -> tuple[SyntheticSetManifest, SyntheticVolumes]:
    """The round's released set: reused if this round was already released, else made now.

    A coordinator may ask again after a lost reply, or re-run a round whose ServerApp died; the same
    round never trains or charges twice. If this site is still training for the round (the earlier
    request's process goes on), the answer waits for that training, up to the round's timeout, and
    sends its set.
    """
    deadline = time.monotonic() + request.timeout_s
    while (folder := _released_folder(settings, request.round_id)) is None:
        # Only a round not yet released loads torch: one asked again is answered from its release.
        from site_agent.generator.training_run import TrainingInProgress, train_generator
        from site_agent.synthetic.export import release_set

        try:
            run = _finished_run(settings, request.round_id) or train_generator(
                with_round_foundation(settings, request),
                epsilon=request.epsilon,
                round_id=request.round_id,
                delta_ceiling=request.delta,
            )
        except TrainingInProgress:
            training_this_round = any(
                run.round_id == request.round_id for run in Ledger(settings.paths.ledger).unfinished()
            )
            if not training_this_round or time.monotonic() > deadline:
                raise  # another round's training, or this one's taking longer than the round waits
            time.sleep(TRAINING_POLL_S)
            continue
        seed = int(hashlib.sha256(request.round_id.encode()).hexdigest()[:8], 16)
        folder = release_set(settings, run, per_class=request.per_class, seed=seed).folder
        break
    return _read_release(settings, request, folder)


def _finished_run(settings: SiteSettings, round_id: str) -> TrainedRun | None:
    from site_agent.generator.training_run import TrainedRun

    latest = Ledger(settings.paths.ledger).latest_complete(round_id)
    return None if latest is None else TrainedRun.read(settings.paths.models / latest.run_id)


def _released_folder(settings: SiteSettings, round_id: str) -> Path | None:
    released = Ledger(settings.paths.ledger).release_of(round_id)
    if released is None:
        return None
    run, release = released
    folder = released_copy(settings, run.run_id, release.set_sha256)
    if folder is None:
        raise Declined("internal", "this round's released set is missing from the site's exports")
    return folder


def _read_release(
    settings: SiteSettings, request: RoundRequest, folder: Path
) -> tuple[SyntheticSetManifest, SyntheticVolumes]:
    from shared.diagnosis.dataset import load_dataset

    data = load_dataset(folder)  # checks SHA256SUMS: what leaves is what the site kept
    (contribution,) = data.card.sites
    counts = np.bincount(data.labels, minlength=len(settings.classes))
    if any(int(c) != request.per_class for c in counts):
        raise Declined("internal", "this round's released set does not hold the requested samples per class")
    items = tuple(
        ManifestItem(
            image=f"images/{settings.site_id}-{n:05d}.nii.gz",
            mask=f"masks/{settings.site_id}-{n:05d}.nii.gz",
            label=settings.classes[int(k)],
            image_sha256=array_sha256(data.images[n]),
            mask_sha256=array_sha256(data.masks[n]),
        )
        for n, k in enumerate(data.labels)
    )
    manifest = SyntheticSetManifest(
        round_id=request.round_id,
        site_id=settings.site_id,
        classes=settings.classes,
        volume_shape=data.card.volume_shape,
        spacing_mm=data.card.spacing_mm,
        privacy=contribution.privacy,
        generator=contribution.generator,
        items=items,
    )
    return manifest, SyntheticVolumes(images=data.images, masks=data.masks, labels=data.labels)


def _refusal(settings: SiteSettings, round_id: str, exc: Exception) -> Refusal:
    reason, detail = _explain(exc)
    # The full explanation stays on site, in the site's own log; unexpected failures keep their traceback.
    if isinstance(exc, FedsynthError):
        log.warning("round %s: declined (%s): %s", round_id, reason, exc)
    elif disk_refused(exc):  # the sentence, not the error: it would name the file that failed
        log.warning("round %s: declined (%s): %s", round_id, reason, detail)
    else:
        log.error("round %s: declined (%s)", round_id, reason, exc_info=exc)
    return Refusal(
        round_id=round_id,
        site_id=settings.site_id,
        reason=reason,
        detail=detail[:500],
        budget=budget_status(settings),
    )


def _explain(exc: Exception) -> tuple[RefusalReason, str]:
    """The refusal's reason and public sentence: a site refusal carries its own (site_agent.errors)."""
    if isinstance(exc, SiteRefusal):
        return exc.reason, exc.public_detail
    if isinstance(exc, (SchemaError, ModelError)):  # the shared readers' errors: a bad request
        return "invalid_request", "the request or its model could not be read"
    if isinstance(exc, FoundationError):
        return "invalid_request", (
            "the round's foundation is not held here, or what was sent does not match its sha256"
        )
    if isinstance(exc, FedsynthError):
        return SiteRefusal.reason, SiteRefusal.public_detail
    if disk_refused(exc):  # what ran is charged (the ledger recorded it first); it resumes with room
        return "internal", "the site's disk is full (or over a quota): the site must free space"
    return "internal", "the site agent failed unexpectedly; details are in the site's log"


__all__ = ["answer_evaluate", "answer_foundation", "answer_synthesize", "budget_status"]
