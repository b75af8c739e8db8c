"""Datasets: list, card, checksums, single files (HTTP Range), the whole set as one streamed
archive, and publishing. Researchers see published versions only; anything else is a 404 to them,
so an unpublished set cannot even be confirmed to exist."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select

from coordinator.service.catalogue import sync
from coordinator.service.deps import OperatorDep, ReaderDep, SessionDep, SettingsDep
from coordinator.service.models import Dataset
from coordinator.service.tokens import Caller, audit
from shared.synthetic_set import SUMS

router = APIRouter(prefix="/datasets", tags=["datasets"])
CHUNK = 1 << 20


class DatasetPublic(BaseModel):
    dataset_id: str
    version: int
    published: bool
    created_at: datetime
    files: int
    bytes: int
    class_counts: dict[str, int]


def _public(row: Dataset) -> DatasetPublic:
    card = json.loads(row.card_json)
    return DatasetPublic(
        dataset_id=row.dataset_id,
        version=row.version,
        published=row.published,
        created_at=row.created_at,
        files=len(row.files),
        bytes=sum(f.size for f in row.files),
        class_counts=card.get("class_counts", {}),
    )


def _find(session: SessionDep, caller: Caller, dataset_id: str, version: int) -> Dataset:
    row = session.scalar(select(Dataset).where(Dataset.dataset_id == dataset_id, Dataset.version == version))
    if row is None or (caller.role != "operator" and not row.published):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dataset {dataset_id} v{version}")
    return row


@router.get("", response_model=list[DatasetPublic])
def list_datasets(session: SessionDep, settings: SettingsDep, caller: ReaderDep) -> list[DatasetPublic]:
    sync(session, settings)
    query = select(Dataset).order_by(Dataset.dataset_id, Dataset.version)
    if caller.role != "operator":
        query = query.where(Dataset.published.is_(True))
    return [_public(row) for row in session.scalars(query)]


@router.get("/{dataset_id}/{version}/card")
def dataset_card(dataset_id: str, version: int, session: SessionDep, caller: ReaderDep) -> dict[str, Any]:
    card: dict[str, Any] = json.loads(_find(session, caller, dataset_id, version).card_json)
    return card


@router.get("/{dataset_id}/{version}/SHA256SUMS", response_class=PlainTextResponse)
def dataset_sums(dataset_id: str, version: int, session: SessionDep, caller: ReaderDep) -> str:
    row = _find(session, caller, dataset_id, version)
    return "".join(f"{f.sha256}  {f.path}\n" for f in sorted(row.files, key=lambda f: f.path))


@router.get("/{dataset_id}/{version}/files/{path:path}", response_class=FileResponse)
def dataset_file(
    dataset_id: str, version: int, path: str, session: SessionDep, settings: SettingsDep, caller: ReaderDep
) -> FileResponse:
    row = _find(session, caller, dataset_id, version)
    if path != SUMS and path not in {f.path for f in row.files}:  # only listed files: no way out of the set
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{path} is not a file of {dataset_id} v{version}")
    return FileResponse(settings.paths.data / row.location / path, filename=Path(path).name)


@router.get("/{dataset_id}/{version}/archive", response_class=StreamingResponse)
def dataset_archive(
    dataset_id: str, version: int, session: SessionDep, settings: SettingsDep, caller: ReaderDep
) -> StreamingResponse:
    row = _find(session, caller, dataset_id, version)
    folder = settings.paths.data / row.location
    names = [SUMS, *sorted(f.path for f in row.files)]
    prefix = f"{dataset_id}-v{version}"
    return StreamingResponse(
        _tar_stream(folder, names, prefix),
        media_type="application/x-tar",
        headers={"Content-Disposition": f'attachment; filename="{prefix}.tar"'},
    )


def _tar_stream(folder: Path, names: list[str], prefix: str) -> Iterator[bytes]:
    """An uncompressed tar written as it is sent: the volumes are gzip already, and memory stays flat."""
    buffer = _Drain()
    with tarfile.open(fileobj=buffer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            path = folder / name
            info = tar.gettarinfo(str(path), arcname=f"{prefix}/{name}")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as fh:
                tar.addfile(info, fh)
            yield from buffer.take()
    yield from buffer.take()


class _Drain(io.RawIOBase):
    """A write-only file whose contents are handed out in chunks as they are written."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> Iterator[bytes]:
        chunks, self._chunks = self._chunks, []
        yield from chunks


def _set_published(
    session: SessionDep, caller: Caller, dataset_id: str, version: int, value: bool
) -> DatasetPublic:
    row = _find(session, caller, dataset_id, version)
    row.published = value
    audit(session, caller, "dataset.publish" if value else "dataset.unpublish", f"{dataset_id}/v{version}")
    return _public(row)


@router.post("/{dataset_id}/{version}/publish", response_model=DatasetPublic)
def publish(dataset_id: str, version: int, session: SessionDep, caller: OperatorDep) -> DatasetPublic:
    """Make a version visible to researchers."""
    return _set_published(session, caller, dataset_id, version, True)


@router.post("/{dataset_id}/{version}/unpublish", response_model=DatasetPublic)
def unpublish(dataset_id: str, version: int, session: SessionDep, caller: OperatorDep) -> DatasetPublic:
    """Hide a version from researchers again (nothing is deleted)."""
    return _set_published(session, caller, dataset_id, version, False)
