"""The object store on a real S3 API (moto's standalone server on loopback): uploads are recorded
only once whole, interrupted uploads are cleared, and downloads (Range, archive) read from S3."""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coordinator.config import load_coordinator_settings
from coordinator.coordinator_toml import write_coordinator_toml
from coordinator.service.database import Database
from coordinator.service.object_store import ObjectStore, StorageError
from shared.federation.processes import free_port
from shared.hashing import file_sha256
from tests.coordinator.service.conftest import make_tokens, running_api, wait_listed, write_pooled_version
from tests.small_disk import grow, small_disk

BUCKET = "fedsynth-test"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(endpoint, timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "moto's S3 server did not start"
                time.sleep(0.2)
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        ObjectStore(f"s3://{BUCKET}", endpoint_url=endpoint).fs.mkdir(BUCKET)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_sets_go_to_s3_whole_or_not_at_all_and_are_served_from_there(
    s3_endpoint: str, tmp_path: Path
) -> None:
    config = write_coordinator_toml(tmp_path / "coordinator")
    text = (
        config.read_text()
        .replace('url = ""\n# An S3', f'url = "s3://{BUCKET}/coordinator"\n# An S3')
        .replace('endpoint_url = ""', f'endpoint_url = "{s3_endpoint}"')
    )
    config.write_text(text)
    settings = load_coordinator_settings(config)
    store = ObjectStore.open(settings)
    assert not store.is_local and store.root == f"{BUCKET}/coordinator"

    folder = write_pooled_version(settings, 1)
    # An upload that fails part-way (here: a file that vanished) takes back what it wrote.
    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
    files["images/vanished.nii.gz"] = folder / "vanished"
    with pytest.raises(StorageError, match="cannot write datasets/pooled/v1 "):
        store.put_tree(files, under="datasets/pooled/v1")
    assert not store.fs.find(f"{BUCKET}/coordinator/datasets")
    # One cut off by a crash leaves objects that no row points at.
    orphan = f"{BUCKET}/coordinator/datasets/pooled/v1-0badcafe"
    store.fs.pipe(f"{orphan}/card.json", (folder / "card.json").read_bytes())

    database = Database.open(settings)
    tokens = make_tokens(database)
    headers = {role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()}
    with running_api(settings, config, database, store) as url:
        (entry,) = wait_listed(url, tokens["operator"], "datasets", 1)
        assert entry["version"] == 1 and not entry["published"]
        # At start the service cleared the orphan; the set went to S3 under a prefix of its own.
        (prefix,) = store.fs.ls(f"{BUCKET}/coordinator/datasets/pooled")
        assert prefix != orphan and len(store.fs.find(prefix)) == len(files) - 1
        assert not (settings.paths.data / "store").exists()

        httpx.post(f"{url}/datasets/pooled/1/publish", headers=headers["operator"]).raise_for_status()
        researcher = httpx.Client(base_url=url, headers=headers["researcher"], timeout=30)
        card = (folder / "card.json").read_bytes()
        whole = researcher.get("/datasets/pooled/1/files/card.json")
        assert whole.status_code == 200 and whole.content == card
        part = researcher.get("/datasets/pooled/1/files/card.json", headers={"Range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == card[10:100]
        assert part.headers["content-range"] == f"bytes 10-99/{len(card)}"
        tail = researcher.get("/datasets/pooled/1/files/card.json", headers={"Range": "bytes=-7"})
        assert tail.status_code == 206 and tail.content == card[-7:]
        beyond = researcher.get(
            "/datasets/pooled/1/files/card.json", headers={"Range": f"bytes={len(card)}-"}
        )
        assert beyond.status_code == 416

        archive = researcher.get("/datasets/pooled/1/archive")
        assert int(archive.headers["content-length"]) == len(archive.content)
        with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
        sums = members.pop("pooled-v1/SHA256SUMS").decode().splitlines()
        assert len(sums) == len(members) == len(files) - 2  # the files SHA256SUMS lists (not itself)
        for line in sums:
            digest, _, name = line.partition("  ")
            assert hashlib.sha256(members[f"pooled-v1/{name}"]).hexdigest() == digest
        researcher.close()
    database.close()


def test_a_local_store_links_instead_of_copying(tmp_path: Path) -> None:
    config = write_coordinator_toml(tmp_path / "coordinator")
    settings = load_coordinator_settings(config)
    folder = write_pooled_version(settings, 1)
    store = ObjectStore.open(settings)
    location = store.put_tree({"card.json": folder / "card.json"}, under="datasets/pooled/v1")
    stored = Path(store.root) / location / "card.json"
    assert store.is_local and stored.read_bytes() == (folder / "card.json").read_bytes()
    assert stored.stat().st_ino == (folder / "card.json").stat().st_ino  # no second copy on disk
    with pytest.raises(StorageError, match="cannot be opened"):
        ObjectStore("nosuchprotocol://bucket")


def test_a_full_object_store_records_nothing_keeps_nothing_half_written_and_catches_up_when_grown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_coordinator_toml(tmp_path / "coordinator")
    settings = load_coordinator_settings(config)
    folder = write_pooled_version(settings, 1)  # about 230 KB: it cannot fit in 64 KB
    database = Database.open(settings)
    tokens = make_tokens(database)
    operator = {"Authorization": f"Bearer {tokens['operator']}"}
    with small_disk(tmp_path / "store", 64) as disk:
        store = ObjectStore(str(disk))  # another file system than the data folder: files are copied
        with caplog.at_level(logging.ERROR), running_api(settings, config, database, store) as url:
            deadline = time.monotonic() + 30
            while not any("is full" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "the watcher never tried the upload"
                time.sleep(0.1)
            time.sleep(1.0)  # a few more passes of the watcher, each refused
            assert httpx.get(f"{url}/datasets", headers=operator).json() == []
            # What a refused upload wrote went with it: no orphan holds the space the next try needs.
            assert not [p for p in (disk / "datasets" / "pooled").glob("*") if any(p.iterdir())]
            failures = [r for r in caplog.records if r.name == "coordinator.service.watcher"]
            assert len(failures) == 1 and failures[0].exc_info is None  # said once, in words
            assert "the object store" in failures[0].getMessage() and "nothing was recorded" in (
                failures[0].getMessage()
            )

            grow(disk, 8192)  # the operator made room: the next pass records the set, whole
            (entry,) = wait_listed(url, tokens["operator"], "datasets", 1)
            assert entry["version"] == 1
            httpx.post(f"{url}/datasets/pooled/1/publish", headers=operator).raise_for_status()
            sums = httpx.get(f"{url}/datasets/pooled/1/SHA256SUMS", headers=operator).text.splitlines()
            for line in sums:
                digest, _, name = line.partition("  ")
                served = httpx.get(f"{url}/datasets/pooled/1/files/{name}", headers=operator).content
                assert hashlib.sha256(served).hexdigest() == digest == file_sha256(folder / name)
            (prefix,) = (disk / "datasets" / "pooled").iterdir()
            assert len(list(prefix.rglob("*.nii.gz"))) == len([s for s in sums if s.endswith(".nii.gz")])
    database.close()
