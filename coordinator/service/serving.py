"""Downloads of what the object store holds: single files with HTTP Range, checksums, and a whole
set or model as one streamed tar.

Only files the database lists for a set can be asked for, so no path leads out of it. A local store
is served straight from its files (Starlette's FileResponse, with Range and conditional requests);
a remote one is read through fsspec in chunks, with single-range requests answered from an offset.
The tar is written as it is sent, header by header and chunk by chunk: memory stays flat for any
size, and its length is known in advance, so clients see a Content-Length and can show progress.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import PurePosixPath
from typing import Protocol

from fastapi import HTTPException, Request, status
from fastapi.responses import FileResponse, Response, StreamingResponse

from coordinator.service.object_store import ObjectStore
from shared.synthetic_set import SUMS

CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class StoredFile(Protocol):
    path: str
    sha256: str
    size: int


def sums_text(files: Iterable[StoredFile]) -> str:
    return "".join(f"{f.sha256}  {f.path}\n" for f in sorted(files, key=lambda f: f.path))


class _FileResponse(FileResponse):
    chunk_size = CHUNK  # Starlette's 64 KiB costs a third of the throughput on large volumes


def serve_file(
    store: ObjectStore, location: str, files: Iterable[StoredFile], path: str, request: Request, what: str
) -> Response:
    """One listed file of a set (or its SHA256SUMS), honouring a Range header."""
    if path != SUMS and path not in {f.path for f in files}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{path} is not a file of {what}")
    filename = PurePosixPath(path).name
    local = store.local_path(location, path)
    if local is not None:
        return _FileResponse(local, filename=filename, media_type="application/octet-stream")
    return _ranged(store, location, path, request.headers.get("range"), filename)


def _ranged(
    store: ObjectStore, location: str, path: str, header: str | None, filename: str
) -> StreamingResponse:
    size = store.size(location, path)
    start, end = 0, size - 1
    code = status.HTTP_200_OK
    if header is not None:
        match = _RANGE.match(header.strip())
        if match is None or match.groups() == ("", ""):
            raise _unsatisfiable(size)  # multi-range and other units: not served remotely
        first, last = match.groups()
        if first == "":
            start = max(0, size - int(last))
        else:
            start, end = int(first), min(end, int(last)) if last else end
        if start > end or start >= size:
            raise _unsatisfiable(size)
        code = status.HTTP_206_PARTIAL_CONTENT
    headers = {
        "Content-Length": str(end - start + 1),
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'attachment; filename="{filename}"',
    }
    if code == status.HTTP_206_PARTIAL_CONTENT:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        _read(store, location, path, start, end - start + 1),
        status_code=code,
        media_type="application/octet-stream",
        headers=headers,
    )


def _unsatisfiable(size: int) -> HTTPException:
    return HTTPException(
        status.HTTP_416_RANGE_NOT_SATISFIABLE, "range not satisfiable", {"Content-Range": f"bytes */{size}"}
    )


def _read(store: ObjectStore, location: str, path: str, start: int, length: int) -> Iterator[bytes]:
    with store.open_read(location, path) as handle:
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def serve_archive(
    store: ObjectStore, location: str, files: Iterable[StoredFile], prefix: str, created_at: datetime
) -> StreamingResponse:
    """The set as one uncompressed tar under `prefix/` (its volumes are gzip already)."""
    members = [(SUMS, store.size(location, SUMS)), *sorted((f.path, f.size) for f in files)]
    mtime = int(created_at.timestamp())
    headers = [_header(f"{prefix}/{name}", size, mtime) for name, size in members]
    length = sum(len(h) + size + _padding(size) for h, (_, size) in zip(headers, members, strict=True))
    return StreamingResponse(
        _tar(store, location, members, headers),
        media_type="application/x-tar",
        headers={
            "Content-Disposition": f'attachment; filename="{prefix}.tar"',
            "Content-Length": str(length + 2 * _BLOCK),
        },
    )


def _header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    return info.tobuf(tarfile.PAX_FORMAT)


def _padding(size: int) -> int:
    return -size % _BLOCK


def _tar(
    store: ObjectStore, location: str, members: list[tuple[str, int]], headers: list[bytes]
) -> Iterator[bytes]:
    for (name, size), header in zip(members, headers, strict=True):
        yield header
        sent = 0
        for chunk in _read(store, location, name, 0, size):
            sent += len(chunk)
            yield chunk
        if sent != size:  # a store that changed under us: end the stream broken, not wrong
            raise RuntimeError(f"{location}/{name}: read {sent} bytes, expected {size}")
        yield b"\0" * _padding(size)
    yield b"\0" * (2 * _BLOCK)  # end of archive
