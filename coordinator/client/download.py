"""Download a published set or model file by file: resumable, verified, with progress.

Each file arrives as `<name>.part` and is renamed into place only once its SHA-256 matches the
server's SHA256SUMS; an interrupted download keeps its `.part`, and the next run asks only for the
rest (HTTP Range). Files already in place with the right hash are not fetched again. SHA256SUMS
itself is written last, so a folder that has it holds the whole set, checked, and nothing else.

While a download is incomplete its folder carries `.fedsynth-download.json` (what it is fetching
and from where); the client resumes only the same set into it, re-checks a finished download of
the same set (fetching only what no longer matches), and never writes into a folder with other files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import TypeAdapter, ValidationError

from coordinator.client.api import ApiClient, ClientError, Unreachable
from shared.hashing import BLOCK, file_sha256
from shared.schemas.common import RelativePath, Sha256
from shared.synthetic_set import SUMS

MARKER = ".fedsynth-download.json"
ATTEMPTS = 3  # per file: a dropped connection is resumed this many times before giving up
_PATH = TypeAdapter(RelativePath)
_SHA = TypeAdapter(Sha256)


class Interrupted(ClientError):
    """A file stopped arriving part-way; what did arrive is kept and the rest asked for again."""


@dataclass
class DownloadResult:
    folder: Path
    files: int
    fetched_bytes: int  # bytes that crossed the network in this run
    resumed: int  # files continued from a .part
    already_there: int  # files found complete and not fetched again


def parse_sums(text: str, source: str) -> list[tuple[str, str]]:
    """(sha256, path) per line, each path a plain relative path: nothing can point outside `--out`."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        digest, _, path = line.partition("  ")
        try:
            entries.append((_SHA.validate_python(digest), _PATH.validate_python(path)))
        except ValidationError:
            raise ClientError(
                f"{source} line {number} is not `sha256  relative/path`: {line[:80]!r}"
            ) from None
    if not entries:
        raise ClientError(f"{source} lists no files")
    return entries


def download(
    client: ApiClient, base: str, out: Path, *, progress: Callable[[int], None] = lambda _: None
) -> DownloadResult:
    """Fetch every file `base/SHA256SUMS` lists (from `base/files/<path>`) into `out`."""
    sums = client.get_text(f"{base}/SHA256SUMS")
    entries = parse_sums(sums, f"{client.server}{base}/SHA256SUMS")
    _claim(out, client.server, base, sums)
    result = DownloadResult(out, len(entries), 0, 0, 0)
    for digest, path in entries:
        target = out / path
        if target.is_file() and file_sha256(target) == digest:
            result.already_there += 1
            progress(target.stat().st_size)
            continue
        _fetch(client, f"{base}/files/{path}", target, digest, result, progress)
    tmp = out / f".{SUMS}.tmp"
    tmp.write_text(sums)
    tmp.replace(out / SUMS)
    (out / MARKER).unlink(missing_ok=True)
    return result


def _claim(out: Path, server: str, base: str, sums: str) -> None:
    """Make `out` this download's folder, or refuse one that holds anything else."""
    marker = out / MARKER
    wanted = {"server": server, "source": base}
    if marker.is_file():
        try:
            found = json.loads(marker.read_text())
        except ValueError:
            found = None
        if found != wanted:
            raise ClientError(
                f"--out {out} holds a download of something else ({marker}); choose another folder"
            )
        return
    finished = out / SUMS
    if finished.is_file() and finished.read_text() == sums:
        finished.unlink()  # this very set, downloaded before: check it again, file by file
    elif out.exists() and any(out.iterdir()):
        raise ClientError(
            f"--out {out} is not empty; choose an empty or new folder (nothing there was changed)"
        )
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(wanted) + "\n")


def _fetch(
    client: ApiClient,
    url: str,
    target: Path,
    digest: str,
    result: DownloadResult,
    progress: Callable[[int], None],
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    resumed = part.exists() and part.stat().st_size > 0
    if resumed:
        progress(part.stat().st_size)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _append(client, url, part, result, progress)
            break
        except (Unreachable, Interrupted) as exc:
            if attempt == ATTEMPTS:
                raise ClientError(f"{exc}; run the same command again to resume") from None
    if file_sha256(part) != digest:
        part.unlink()
        raise ClientError(
            f"{target.name} does not match SHA256SUMS (the download was damaged and is removed); "
            "run the same command again"
        )
    part.replace(target)
    result.resumed += int(resumed)


def _append(
    client: ApiClient, url: str, part: Path, result: DownloadResult, progress: Callable[[int], None]
) -> None:
    """Bring `part` up to the whole file: ask for what is missing, append what arrives."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with client.stream(url, headers) as response:
        if response.status_code == 416:  # the .part is already whole (or longer than the file)
            response.read()
            if offset:
                _restart_if_too_long(part, response)
            return
        if response.status_code == 206:
            if not response.headers.get("content-range", "").startswith(f"bytes {offset}-"):
                raise ClientError(f"{url}: the server answered another range than asked for")
            mode = "ab"
        else:
            mode = "wb"  # the server sent the whole file: start again
            progress(-offset)
        try:
            with part.open(mode) as fh:
                for chunk in response.iter_bytes(BLOCK):
                    fh.write(chunk)
                    result.fetched_bytes += len(chunk)
                    progress(len(chunk))
        except httpx.TransportError as exc:
            raise Interrupted(f"{url}: the download was interrupted ({exc})") from None


def _restart_if_too_long(part: Path, response: httpx.Response) -> None:
    size = response.headers.get("content-range", "").rpartition("/")[2]
    if size.isdigit() and part.stat().st_size > int(size):
        part.unlink()  # not a prefix of this file: start it again on the next attempt
        raise Interrupted(f"{part.name} was longer than the file; restarting it")
