"""Downloads of what the object store holds: single files with HTTP Range, checksums, and a whole
set or model as one streamed tar.

Only files the database lists for a set can be asked for, so no path leads out of it. Bodies are
sent in pieces of CHUNK bytes read straight into fresh buffers, by `_Stream`: on a local store the
reads run in the event loop (page-cache reads of 1 MiB take well under a millisecond, and every
hand-over to a thread cost throughput: see bench/download.py), on a remote one in a worker thread.
The tar is written as it is sent, so memory stays flat for any size, and its length is known in
advance, so clients see a Content-Length and can show progress.
"""

from __future__ import annotations

import asyncio
import re
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Protocol
from urllib.parse import quote

import anyio
from fastapi import HTTPException, Request, status
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from coordinator.service.object_store import ObjectStore, StorageError
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


def serve_file(
    store: ObjectStore, location: str, files: Iterable[StoredFile], path: str, request: Request, what: str
) -> Response:
    """One listed file of a set (or its SHA256SUMS), honouring a single-range Range header."""
    listed = {f.path: f for f in files}
    if path == SUMS:
        size, etag = store.size(location, SUMS), None
    elif path in listed:
        size, etag = listed[path].size, listed[path].sha256
        if store.is_local and store.size(location, path) != size:  # a free check; hashing is the client's
            raise StorageError(f"{location}/{path} in the object store is not the size its set records")
    else:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{path} is not a file of {what}")
    start, end = 0, size - 1
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'attachment; filename="{PurePosixPath(path).name}"',
    }
    if etag is not None:
        headers["ETag"] = f'"{etag}"'  # the file's sha256: a resumed download can check it is the same file
    if store.accel_redirect:  # nginx sends it (and answers Range itself), now the caller is checked
        return _handed_to_nginx(store, f"{location}/{path}", headers, "application/octet-stream")
    code = status.HTTP_200_OK
    if (asked := request.headers.get("range")) is not None:
        start, end = _range(asked, size)
        code = status.HTTP_206_PARTIAL_CONTENT
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return _Stream(
        _file_pieces(store.open_read(location, path), start, end - start + 1),
        in_loop=store.is_local,
        status_code=code,
        headers=headers,
        media_type="application/octet-stream",
    )


def _range(header: str, size: int) -> tuple[int, int]:
    """First and last byte of `bytes=a-b`, `bytes=a-` or `bytes=-n`; 416 for anything else."""
    match = _RANGE.match(header.strip())
    if match is None or match.groups() == ("", ""):
        raise _unsatisfiable(size)  # multiple ranges and other units are not served
    first, last = (_position(text) for text in match.groups())
    if first is None:
        start, end = max(0, size - (last or 0)), size - 1
    else:
        start, end = first, min(size - 1, last) if last is not None else size - 1
    if start > end or start >= size:
        raise _unsatisfiable(size)
    return start, end


def _position(text: str) -> int | None:
    """A byte position of a Range header. One of more than 18 digits lies past the end of any
    file, and is read as such: int() of thousands of digits is an error in Python (and a 500)."""
    if not text:
        return None
    return int(text) if len(text) <= 18 else 10**18


def _unsatisfiable(size: int) -> HTTPException:
    return HTTPException(
        status.HTTP_416_RANGE_NOT_SATISFIABLE, "range not satisfiable", {"Content-Range": f"bytes */{size}"}
    )


def _file_pieces(handle: IO[bytes], start: int, length: int) -> Iterator[memoryview]:
    with handle:
        handle.seek(start)
        while length > 0:
            piece = memoryview(bytearray(min(CHUNK, length)))
            got = handle.readinto(piece)  # type: ignore[attr-defined]
            if not got:
                raise RuntimeError(f"the stored file ended {length} bytes early")
            length -= got
            yield piece[:got]


def serve_archive(
    store: ObjectStore,
    plans: ArchivePlans,
    location: str,
    files: Callable[[], Iterable[StoredFile]],
    prefix: str,
    created_at: datetime,
) -> Response:
    """The set as one uncompressed tar under `prefix/` (its volumes are gzip already)."""
    plan = plans.get(store, location, prefix, int(created_at.timestamp()), files)
    headers = {"Content-Disposition": f'attachment; filename="{prefix}.tar"'}
    if store.accel_redirect:
        return _handed_to_nginx(
            store, _kept_archive(store, location, plan, prefix), headers, "application/x-tar"
        )
    return _Stream(
        _tar(store, location, plan.members, plan.headers),
        in_loop=store.is_local,
        media_type="application/x-tar",
        headers={**headers, "Content-Length": str(plan.length)},
    )


@dataclass(frozen=True)
class _Plan:
    members: list[tuple[str, int]]
    headers: list[bytes]
    length: int


class ArchivePlans:
    """Archives' members and tar headers, worked out once per stored set and kept (a stored set
    never changes): for a set of a few hundred files they took longer than sending its first
    50 MB. The service holds one, for the sets downloaded last."""

    def __init__(self, kept: int = 64) -> None:
        self._kept = kept
        self._plans: dict[tuple[str, str, int], _Plan] = {}
        self._lock = threading.Lock()  # routes run in a thread pool

    def get(
        self,
        store: ObjectStore,
        location: str,
        prefix: str,
        mtime: int,
        files: Callable[[], Iterable[StoredFile]],
    ) -> _Plan:
        key = (location, prefix, mtime)
        with self._lock:
            plan = self._plans.get(key)
        if plan is not None:
            return plan
        members = [(SUMS, store.size(location, SUMS)), *sorted((f.path, f.size) for f in files())]
        headers = [_header(f"{prefix}/{name}", size, mtime) for name, size in members]
        body = sum(len(h) + size + _padding(size) for h, (_, size) in zip(headers, members, strict=True))
        plan = _Plan(members, headers, body + 2 * _BLOCK)
        with self._lock:
            while len(self._plans) >= self._kept:
                self._plans.pop(next(iter(self._plans)))  # the oldest
            self._plans[key] = plan
        return plan


ARCHIVES = "archives"  # below the store's root: tars kept for nginx to send
_archive_lock = threading.Lock()


def _kept_archive(store: ObjectStore, location: str, plan: _Plan, prefix: str) -> str:
    """The set's tar as a file of the store (for nginx to send), written the first time it is
    asked for: the same bytes the coordinator streams. Returns its key below the store's root."""
    key = f"{ARCHIVES}/{location}/{prefix}.tar"
    target = Path(store.root, key)
    with _archive_lock:  # routes run in a thread pool: one writer, the others wait for its file
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            with partial.open("wb") as out:
                for piece in _tar(store, location, plan.members, plan.headers):
                    out.write(piece)
            partial.replace(target)
    return key


def _handed_to_nginx(store: ObjectStore, key: str, headers: dict[str, str], media_type: str) -> Response:
    """An empty answer that tells nginx to send `key` from its internal location for the store.
    nginx keeps Content-Disposition from here and answers Range and conditional requests."""
    return Response(
        status_code=status.HTTP_200_OK,
        headers={**headers, "X-Accel-Redirect": quote(f"{store.accel_redirect}/{key}")},
        media_type=media_type,
    )


def _header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    return info.tobuf(tarfile.PAX_FORMAT)


def _padding(size: int) -> int:
    return -size % _BLOCK


def _tar(
    store: ObjectStore, location: str, members: list[tuple[str, int]], headers: list[bytes]
) -> Iterator[memoryview]:
    fill = _Pieces()
    for (name, size), header in zip(members, headers, strict=True):
        yield from fill.write(header)
        with store.open_read(location, name) as handle:
            left = size
            while left:
                yield from fill.hand_out_if_full()
                got = handle.readinto(fill.room(left))  # type: ignore[attr-defined]
                if not got:  # a store that changed under us: end the stream broken, not wrong
                    raise RuntimeError(f"{location}/{name}: {left} of {size} bytes missing")
                fill.used, left = fill.used + got, left - got
        yield from fill.skip(_padding(size))
    yield from fill.skip(2 * _BLOCK)  # end of archive
    yield fill.piece[: fill.used]


class _Pieces:
    """The tar's bytes in full pieces of CHUNK. A set has hundreds of small files: each is read
    straight into the piece being filled (no second copy), and the server gets one piece per
    CHUNK instead of three per file. Fresh pieces are zero-filled, so padding is a skip."""

    def __init__(self) -> None:
        self.piece, self.used = memoryview(bytearray(CHUNK)), 0

    def hand_out_if_full(self) -> Iterator[memoryview]:
        if self.used == CHUNK:
            yield self.piece
            self.piece, self.used = memoryview(bytearray(CHUNK)), 0

    def room(self, wanted: int) -> memoryview:
        return self.piece[self.used : self.used + min(CHUNK - self.used, wanted)]

    def write(self, data: bytes) -> Iterator[memoryview]:
        while data:
            yield from self.hand_out_if_full()
            window = self.room(len(data))
            window[:] = data[: len(window)]
            data, self.used = data[len(window) :], self.used + len(window)

    def skip(self, count: int) -> Iterator[memoryview]:
        while count:
            yield from self.hand_out_if_full()
            step = min(CHUNK - self.used, count)
            count, self.used = count - step, self.used + step


class _Stream(Response):
    """A body sent piece by piece, straight to the server. Starlette's StreamingResponse does the
    same with machinery around every piece that cost a third of the throughput here. Reading
    stops as soon as the client goes away (the server would drop the pieces silently)."""

    def __init__(
        self,
        pieces: Iterator[memoryview],
        *,
        in_loop: bool,
        media_type: str,
        headers: dict[str, str],
        status_code: int = 200,
    ) -> None:
        super().__init__(status_code=status_code, headers=headers, media_type=media_type)
        self._pieces = pieces
        self._in_loop = in_loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                continue
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            done = object()
            while not gone.is_set():
                if self._in_loop:
                    piece = next(self._pieces, done)
                else:
                    piece = await anyio.to_thread.run_sync(next, self._pieces, done)
                if piece is done:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    break
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        finally:
            watcher.cancel()
            close = getattr(self._pieces, "close", None)
            if close is not None:
                close()
