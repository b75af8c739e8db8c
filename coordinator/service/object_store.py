"""The object store that published pooled sets and models are kept in and served from.

A folder (`data/store` by default) or any fsspec URL: `s3://bucket/prefix` on AWS, MinIO or Ceph.
Every upload goes under a fresh prefix (`datasets/pooled/v3-<random>`) and is never changed
afterwards. The database row that points at a prefix is written only once every object under it is
in place and its size checked, so a crash mid-upload leaves an orphan prefix that nothing refers to,
never a half-written set that someone could download; `remove_orphans` clears such prefixes at the
next start.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from coordinator.config import CoordinatorSettings
from coordinator.errors import CoordinatorError
from shared.disk_errors import disk_refused


class StorageError(CoordinatorError):
    """The object store cannot be opened, or an object could not be written, read or checked."""


class ObjectStore:
    def __init__(self, url: str, *, endpoint_url: str = "", accel_redirect: str = "") -> None:
        options: dict[str, Any] = {"endpoint_url": endpoint_url} if endpoint_url else {}
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as exc:
            hint = " (for s3:// install the s3 extra: pip install 'fedsynth[s3]')" if "s3" in url else ""
            raise StorageError(f"[storage] url {url!r} cannot be opened: {exc}{hint}") from None
        self.url = url
        self.root = root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)
        if accel_redirect and not self.is_local:
            raise StorageError("[storage] accel_redirect works with a folder store only, not with " + url)
        # nginx's internal location for this folder: downloads are handed to it (serving.py).
        self.accel_redirect = accel_redirect.rstrip("/")

    @classmethod
    def open(cls, settings: CoordinatorSettings) -> ObjectStore:
        storage = settings.storage
        url = storage.url or str(settings.paths.data / "store")
        return cls(url, endpoint_url=storage.endpoint_url, accel_redirect=storage.accel_redirect)

    def _key(self, location: str, name: str = "") -> str:
        return "/".join(part for part in (self.root, location, name) if part)

    # --- writing ---------------------------------------------------------------------------------

    def put_tree(self, files: Mapping[str, Path], *, under: str) -> str:
        """Copy `files` (name in the store -> file here) to a new prefix below `under`; return it.

        Each object's size is checked after the upload. On a local store files are hard-linked
        when source and store share a file system (the files are written once and never changed),
        so the default store costs no extra disk."""
        location = f"{under}-{secrets.token_hex(4)}"
        try:
            for name, source in files.items():
                self._put(source, self._key(location, name))
            for name, source in files.items():
                stored = int(self.fs.size(self._key(location, name)))
                expected = source.stat().st_size
                if stored != expected:
                    raise StorageError(f"{under}/{name}: stored {stored} bytes, expected {expected}")
        except (OSError, StorageError) as exc:
            # What was written goes at once: on a full store it holds the very space the next try
            # needs (remove_orphans at the next start is the fallback for a crash mid-upload).
            with contextlib.suppress(OSError):
                self.remove(location)
            if disk_refused(exc):
                raise StorageError(
                    f"the object store {self.url} is full (or over a quota): {under} could not be "
                    "written, nothing was recorded, and it is tried again until there is room"
                ) from None
            # `under`, not the prefix: its random part would make each retry's message new.
            raise StorageError(f"cannot write {under} to the object store {self.url}: {exc}") from None
        return location

    def _put(self, source: Path, key: str) -> None:
        if self.is_local:
            Path(key).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, key)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
            shutil.copyfile(source, key)
            return
        self.fs.put_file(str(source), key)

    def remove(self, location: str) -> None:
        key = self._key(location)
        if self.fs.exists(key):
            self.fs.rm(key, recursive=True)

    def remove_orphans(self, under: str, keep: Collection[str]) -> list[str]:
        """Remove every prefix directly below `under` that is not in `keep`; return what went."""
        parent = self._key(under)
        if not self.fs.exists(parent):
            return []
        removed = []
        for entry in self.fs.ls(parent, detail=False):
            location = f"{under}/{str(entry).rstrip('/').rsplit('/', 1)[-1]}"
            if location not in keep:
                self.remove(location)
                removed.append(location)
        return removed

    # --- reading ---------------------------------------------------------------------------------

    def size(self, location: str, name: str) -> int:
        try:
            if self.is_local:
                return self._local_file(location, name).stat().st_size
            return int(self.fs.size(self._key(location, name)))
        except (OSError, FileNotFoundError) as exc:
            raise StorageError(f"{location}/{name} is missing from the object store: {exc}") from None

    def open_read(self, location: str, name: str) -> IO[bytes]:
        try:
            if self.is_local:  # the plain file: fsspec's wrapper costs a third on many small files
                fd = os.open(self._local_file(location, name), os.O_RDONLY | os.O_NOFOLLOW)
                return os.fdopen(fd, "rb")
            handle: IO[bytes] = self.fs.open(self._key(location, name), "rb")
        except (OSError, FileNotFoundError) as exc:
            raise StorageError(f"{location}/{name} is missing from the object store: {exc}") from None
        return handle

    def _local_file(self, location: str, name: str) -> Path:
        """A stored object of a local store: a regular file inside the store, reached through no
        link. Whatever put a link there (a mistake, an intruder), the service never follows it
        out of the store: it once served its own database that way, and dropped its locks."""
        path = Path(self._key(location, name))
        inside = Path(os.path.realpath(self.root), location, name)
        if Path(os.path.realpath(path)) != inside or not stat.S_ISREG(path.lstat().st_mode):
            raise StorageError(f"{location}/{name} in the object store is not a regular file (a link?)")
        return path
