"""Models: the diagnostic models rounds trained, with their cards, files and archives, and
publishing. As with datasets, researchers see published models only; anything else is a 404."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel
from sqlalchemy import select

from coordinator.service.deps import (
    ArchivePlansDep,
    OperatorDep,
    ReaderDep,
    SessionDep,
    StoreDep,
    error_responses,
)
from coordinator.service.models import Model
from coordinator.service.routes.datasets import FILE_RESPONSES
from coordinator.service.serving import serve_archive, serve_file, sums_text
from coordinator.service.tokens import Caller, audit

router = APIRouter(prefix="/models", tags=["models"], responses=error_responses(401, 403, 404))


class ModelPublic(BaseModel):
    model_sha256: str
    round_id: str
    published: bool
    created_at: datetime
    task: str
    classes: list[str]
    trained_on: str | None
    validation: dict[str, float]
    files: int
    bytes: int


def _public(row: Model) -> ModelPublic:
    card = json.loads(row.card_json)
    training = card.get("training", {})
    metrics = card.get("metrics", {})
    trained_on = (
        f"{training['dataset_id']} v{training['dataset_version']}" if "dataset_id" in training else None
    )
    return ModelPublic(
        model_sha256=row.model_sha256,
        round_id=row.round_id,
        published=row.published,
        created_at=row.created_at,
        task=str(card.get("task", "")),
        classes=list(card.get("classes", [])),
        trained_on=trained_on,
        validation={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        files=len(row.files),
        bytes=sum(f.size for f in row.files),
    )


def _find(session: SessionDep, caller: Caller, model_sha256: str) -> Model:
    row = session.get(Model, model_sha256)
    if row is None or (caller.role != "operator" and not row.published):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model {model_sha256}")
    return row


@router.get("", response_model=list[ModelPublic])
def list_models(session: SessionDep, caller: ReaderDep) -> list[ModelPublic]:
    """Every model (researchers: the published ones), oldest first."""
    query = select(Model).order_by(Model.created_at)
    if caller.role != "operator":
        query = query.where(Model.published.is_(True))
    return [_public(row) for row in session.scalars(query)]


@router.get("/{model_sha256}/card")
def model_card(model_sha256: str, session: SessionDep, caller: ReaderDep) -> dict[str, Any]:
    """The model's card (metadata.json): classes, input, training data and its card, metrics."""
    card: dict[str, Any] = json.loads(_find(session, caller, model_sha256).card_json)
    return card


@router.get("/{model_sha256}/SHA256SUMS", response_class=PlainTextResponse)
def model_sums(model_sha256: str, session: SessionDep, caller: ReaderDep) -> str:
    """`sha256  path` for every file of the model."""
    return sums_text(_find(session, caller, model_sha256).files)


@router.get("/{model_sha256}/files/{path:path}", responses=FILE_RESPONSES)  # type: ignore[arg-type]
def model_file(
    model_sha256: str,
    path: str,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    plans: ArchivePlansDep,
    caller: ReaderDep,
) -> Response:
    """One file of the model; `Range: bytes=...` resumes an interrupted download."""
    row = _find(session, caller, model_sha256)
    return serve_file(store, row.location, row.files, path, request, f"model {model_sha256[:12]}")


@router.get(
    "/{model_sha256}/archive",
    response_class=Response,
    responses={200: {"content": {"application/x-tar": {}}, "description": "The model as a tar"}},
)
def model_archive(
    model_sha256: str, session: SessionDep, store: StoreDep, plans: ArchivePlansDep, caller: ReaderDep
) -> Response:
    """The model's files as one tar, under `model-<sha256 prefix>/`."""
    row = _find(session, caller, model_sha256)
    return serve_archive(
        store, plans, row.location, lambda: row.files, f"model-{model_sha256[:12]}", row.created_at
    )


def _set_published(session: SessionDep, caller: Caller, model_sha256: str, value: bool) -> ModelPublic:
    row = _find(session, caller, model_sha256)
    row.published = value
    audit(session, caller, "model.publish" if value else "model.unpublish", model_sha256)
    return _public(row)


@router.post("/{model_sha256}/publish", response_model=ModelPublic)
def publish(model_sha256: str, session: SessionDep, caller: OperatorDep) -> ModelPublic:
    """Make a model visible to researchers."""
    return _set_published(session, caller, model_sha256, True)


@router.post("/{model_sha256}/unpublish", response_model=ModelPublic)
def unpublish(model_sha256: str, session: SessionDep, caller: OperatorDep) -> ModelPublic:
    """Hide a model from researchers again (nothing is deleted)."""
    return _set_published(session, caller, model_sha256, False)
