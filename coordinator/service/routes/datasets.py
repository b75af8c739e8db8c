"""Datasets: list, card, checksums, single files (HTTP Range), the whole set as one streamed archive,
and publishing. Researchers see published versions only; anything else is a 404 to them, so an
unpublished set cannot even be confirmed to exist.

Publishing is one database update: a version's files were all in the object store, checked, before
its row existed, so a publish can never expose a half-written set.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, status
from fastapi import Path as FastApiPath
from fastapi.responses import FileResponse, PlainTextResponse, Response
from pydantic import BaseModel, BeforeValidator
from sqlalchemy import select

from coordinator.federation.rounds import RoundFolder
from coordinator.service.deps import (
    ArchivePlansDep,
    OperatorDep,
    ReaderDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    error_responses,
)
from coordinator.service.models import Dataset
from coordinator.service.serving import serve_archive, serve_file, sums_text
from coordinator.service.tokens import Caller, audit
from shared.schemas import DatasetCard


def _canonical_number(value: object) -> object:
    """A version is written one way only: `1`, never `01`, `1.0` or `+1` (each would otherwise be
    read as 1, and a cache or an audit line would see two names for one version)."""
    if isinstance(value, str) and not re.fullmatch(r"[1-9][0-9]*", value):
        raise ValueError("a version is a whole number written without leading zeros, sign or decimals")
    return value


# Versions count from 1; the bound keeps a request from overflowing a database integer.
Version = Annotated[int, FastApiPath(ge=1, le=2**31 - 1), BeforeValidator(_canonical_number)]

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=error_responses(401, 403, 404))

FILE_RESPONSES = {
    200: {"content": {"application/octet-stream": {}}, "description": "The file"},
    206: {"content": {"application/octet-stream": {}}, "description": "The requested range"},
    404: {"description": "No such dataset version or file"},
    416: {"description": "Range not satisfiable"},
}


class DatasetPublic(BaseModel):
    dataset_id: str
    version: int
    round_id: str | None
    published: bool
    created_at: datetime
    files: int
    bytes: int
    class_counts: dict[str, int]
    sites: list[str]


def _public(row: Dataset) -> DatasetPublic:
    card = json.loads(row.card_json)
    return DatasetPublic(
        dataset_id=row.dataset_id,
        version=row.version,
        round_id=row.round_id,
        published=row.published,
        created_at=row.created_at,
        files=len(row.files),
        bytes=sum(f.size for f in row.files),
        class_counts=card.get("class_counts", {}),
        sites=sorted({s["site_id"] for s in card.get("sites", [])}),
    )


def _find(session: SessionDep, caller: Caller, dataset_id: str, version: Version) -> Dataset:
    row = session.scalar(select(Dataset).where(Dataset.dataset_id == dataset_id, Dataset.version == version))
    if row is None or (caller.role != "operator" and not row.published):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dataset {dataset_id} v{version}")
    return row


@router.get("", response_model=list[DatasetPublic])
def list_datasets(session: SessionDep, caller: ReaderDep) -> list[DatasetPublic]:
    """Every dataset version (researchers: the published ones), oldest first."""
    query = select(Dataset).order_by(Dataset.dataset_id, Dataset.version)
    if caller.role != "operator":
        query = query.where(Dataset.published.is_(True))
    return [_public(row) for row in session.scalars(query)]


@router.get("/{dataset_id}/{version}/card", response_model=DatasetCard)
def dataset_card(dataset_id: str, version: Version, session: SessionDep, caller: ReaderDep) -> DatasetCard:
    """The dataset card: classes and counts, shapes, spacing, licence, and each site's privacy spend."""
    return DatasetCard.model_validate_json(_find(session, caller, dataset_id, version).card_json)


@router.get("/{dataset_id}/{version}/SHA256SUMS", response_class=PlainTextResponse)
def dataset_sums(dataset_id: str, version: Version, session: SessionDep, caller: ReaderDep) -> str:
    """`sha256  path` for every file of the set, as `sha256sum -c` reads it."""
    return sums_text(_find(session, caller, dataset_id, version).files)


@router.get("/{dataset_id}/{version}/files/{path:path}", responses=FILE_RESPONSES)  # type: ignore[arg-type]
def dataset_file(
    dataset_id: str,
    version: Version,
    path: str,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    caller: ReaderDep,
) -> Response:
    """One file of the set; `Range: bytes=...` resumes an interrupted download."""
    row = _find(session, caller, dataset_id, version)
    return serve_file(store, row.location, row.files, path, request, f"{dataset_id} v{version}")


@router.get(
    "/{dataset_id}/{version}/archive",
    response_class=Response,
    responses={200: {"content": {"application/x-tar": {}}, "description": "The whole set as a tar"}},
)
def dataset_archive(
    dataset_id: str,
    version: Version,
    session: SessionDep,
    store: StoreDep,
    plans: ArchivePlansDep,
    caller: ReaderDep,
) -> Response:
    """The whole set as one tar, streamed, under `<dataset>-v<version>/`."""
    row = _find(session, caller, dataset_id, version)
    return serve_archive(
        store, plans, row.location, lambda: row.files, f"{dataset_id}-v{version}", row.created_at
    )


@router.get(
    "/{dataset_id}/{version}/montage.png",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}, "description": "The montage"}},
)
def dataset_montage(
    dataset_id: str, version: Version, session: SessionDep, settings: SettingsDep, caller: ReaderDep
) -> FileResponse:
    """Samples of every class of the set, image and lesion outline, drawn by the round that built it."""
    row = _find(session, caller, dataset_id, version)
    path = RoundFolder.of(settings, row.round_id).figures / "montage.png" if row.round_id else None
    if path is None or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{dataset_id} v{version} has no montage")
    return FileResponse(path, media_type="image/png")


def _set_published(
    session: SessionDep, caller: Caller, dataset_id: str, version: Version, value: bool
) -> DatasetPublic:
    row = _find(session, caller, dataset_id, version)
    row.published = value
    audit(session, caller, "dataset.publish" if value else "dataset.unpublish", f"{dataset_id}/v{version}")
    return _public(row)


@router.post("/{dataset_id}/{version}/publish", response_model=DatasetPublic)
def publish(dataset_id: str, version: Version, session: SessionDep, caller: OperatorDep) -> DatasetPublic:
    """Make a version visible to researchers."""
    return _set_published(session, caller, dataset_id, version, True)


@router.post("/{dataset_id}/{version}/unpublish", response_model=DatasetPublic)
def unpublish(dataset_id: str, version: Version, session: SessionDep, caller: OperatorDep) -> DatasetPublic:
    """Hide a version from researchers again (nothing is deleted)."""
    return _set_published(session, caller, dataset_id, version, False)
