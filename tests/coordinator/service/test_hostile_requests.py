"""What a careful attacker (or a broken client) sends the live service: each gets a clear 4xx, never
a 500, never a frozen server, and nothing of the coordinator's machine in the answer."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from coordinator.service import request_limits
from coordinator.service.public_text import plain_reason
from tests.coordinator.service.conftest import Service, write_pooled_version

HUGE = "9" * 5000  # past Python's 4300-digit limit for int()


def _pooled_file(service: Service) -> tuple[str, Path]:
    """A published file of pooled v1: its URL path, and where it lies in the object store."""
    write_pooled_version(service.settings, 1)
    service.wait_listed("datasets", 1)
    stored = next((service.settings.paths.data / "store").rglob("card.json"))
    return "/datasets/pooled/1/files/card.json", stored


def test_ranges_versions_and_json_the_parsers_choke_on_are_4xx(sqlite_service: Service) -> None:
    url, stored = _pooled_file(sqlite_service)
    size = stored.stat().st_size
    with sqlite_service.client("operator") as client:
        assert client.get(url, headers={"Range": f"bytes={HUGE}-"}).status_code == 416
        whole = client.get(url, headers={"Range": f"bytes=0-{HUGE}"})
        assert whole.status_code == 206 and len(whole.content) == size
        assert client.get(url, headers={"Range": f"bytes=-{HUGE}"}).status_code == 206
        for version in ("01", "1.0", "+1", HUGE):
            assert client.get(f"/datasets/pooled/{version}/card").status_code == 422, version
        assert client.get("/datasets/pooled/1/card").status_code == 200
        for body in (
            '{"epsilon": NaN, "per_class": 1}',
            '{"epsilon": Infinity, "per_class": 1}',
            '{"epsilon": 1e309, "per_class": 1}',
            '{"epsilon": 1, "per_class": 1, "round_id": "\\ud800"}',
            '{"epsilon": 1, "per_class": 1, "\\udfff": 1}',
        ):
            answer = client.post("/rounds", content=body, headers={"Content-Type": "application/json"})
            assert answer.status_code == 422, (body, answer.text)
            assert answer.json()["detail"][0]["loc"][0] == "body"


def test_a_huge_body_is_refused_unread_and_a_stalled_one_let_go(
    sqlite_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sqlite_service.client("operator") as client:
        started = time.monotonic()
        big = client.post("/rounds", content=b"[" + b"1," * (5 << 20) + b"1]")
        assert big.status_code == 413 and time.monotonic() - started < 5
        assert client.get("/health").status_code == 200

    monkeypatch.setattr(request_limits, "BODY_IDLE_S", 0.5)  # read by each request
    address = urlsplit(sqlite_service.url)
    with socket.create_connection((address.hostname, address.port), timeout=60) as raw:
        raw.sendall(
            b"POST /rounds HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\nAuthorization: Bearer "
            + sqlite_service.tokens["operator"].encode()
            + b'\r\n\r\n{"epsilon": '
        )
        started = time.monotonic()
        answer = raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert time.monotonic() - started < request_limits.BODY_IDLE_S + 10


def test_the_object_store_serves_no_link_and_no_changed_file(sqlite_service: Service) -> None:
    url, stored = _pooled_file(sqlite_service)
    database = sqlite_service.settings.paths.data / "coordinator.db"
    stored.unlink()
    os.symlink(database, stored)  # the set's file replaced by a link to the server's own database
    with sqlite_service.client("operator") as client:
        refused = client.get(url)
        assert refused.status_code == 503 and "not a regular file" in refused.json()["detail"]
        assert str(sqlite_service.settings.paths.data) not in refused.text
        stored.unlink()
        stored.write_text("{}")  # a regular file again, but not the one the set recorded
        assert client.get(url).status_code == 503
        assert client.get("/datasets").status_code == 200  # the database and its locks are fine


def test_a_refused_launch_is_audited_and_its_reason_names_no_path(sqlite_service: Service) -> None:
    with sqlite_service.client("operator") as client:
        refused = client.post("/rounds", json={"epsilon": 1, "per_class": 1, "round_id": "r-refused"})
        assert refused.status_code == 409, refused.text
        audit = client.get("/audit").json()
    failed = [e for e in audit if e["action"] == "round.launch.failed"]
    assert len(failed) == 1 and failed[0]["target"] == "r-refused" and failed[0]["detail"]["reason"]
    assert failed[0]["actor"] == "test-operator"


def test_api_reasons_lose_flowers_colours_and_the_coordinators_paths() -> None:
    flower = (
        "\x1b[1;31m❌ `flwr run` failed:\x1b[0m cannot read /srv/fedsynth/data/flower/app/pyproject.toml; "
        "see https://flower.ai/docs/run and '/srv/fedsynth/coordinator.toml'"
    )
    assert plain_reason(flower) == (
        "❌ `flwr run` failed: cannot read pyproject.toml; "
        "see https://flower.ai/docs/run and 'coordinator.toml'"
    )


def test_a_connection_that_never_finishes_its_head_is_closed(
    sqlite_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(request_limits, "HEAD_TIMEOUT_S", 0.5)  # read at each connection
    address = urlsplit(sqlite_service.url)
    for sent in (b"", b"GET /health HTTP/1.1\r\nHost: x\r\n"):  # nothing, or half a head
        with socket.create_connection((address.hostname, address.port), timeout=30) as raw:
            raw.sendall(sent)
            started = time.monotonic()
            assert raw.recv(100) == b""  # closed by the server, not by our timeout
        assert time.monotonic() - started < 10
