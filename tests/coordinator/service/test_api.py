"""The coordinator API: every route checked against every role, and a researcher's download."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import text

from coordinator.coordinator_toml import write_coordinator_toml
from coordinator.service.app import create_app
from coordinator.service.deps import Allowed, Public
from coordinator.service.tokens import ROLES
from shared.federation.processes import free_port
from shared.foundation.shipped import SHIPPED_FOUNDATION
from tests.coordinator.service.conftest import Service, write_pooled_version


def _allowed_roles(route: APIRoute) -> frozenset[str]:
    """The roles a route admits, read from its dependencies; a route that declares none fails here."""
    found = [
        dep.call.roles for dep in route.dependant.dependencies if isinstance(dep.call, (Allowed, Public))
    ]
    assert len(found) == 1, f"{route.methods} {route.path} declares who may call it {len(found)} times"
    return frozenset(found[0])


def _api_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """(full path, route) for every API route, through included routers at any depth."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):  # FastAPI's record of an include_router call
            yield from _api_routes(route.original_router.routes, prefix + route.include_context.prefix)


def test_every_route_refuses_no_token_and_every_role_it_does_not_admit(service: Service) -> None:
    write_pooled_version(service.settings, 1)
    service.wait_listed("datasets", 1)
    app = create_app(service.settings, service.config)
    routes = list(_api_routes(app.routes))
    # The walk finds every operation of the published contract, so none escapes the check below.
    contract = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    assert {(m, p.replace(":path}", "}")) for p, r in routes for m in r.methods} == contract
    assert len(routes) >= 10
    checked: set[str] = set()
    for full_path, route in routes:
        allowed = _allowed_roles(route)
        path = re.sub(
            r"\{[^}]+\}",
            lambda m: {"{version}": "1", "{path:path}": "card.json"}.get(m.group(0), "x"),
            full_path,
        )
        path = path.replace("/x/1/", "/pooled/1/")
        checked.add(path)
        for method in route.methods:
            with service.client() as anonymous:
                status = anonymous.request(method, path).status_code
            assert status == (200 if "anyone" in allowed else 401), (method, path, status)
            for role in ROLES:
                with service.client(role) as client:
                    status = client.request(method, path).status_code
                if "anyone" in allowed or role in allowed:
                    assert status not in (401, 403), (method, path, role, status)
                else:
                    assert status == 403, (method, path, role, status)
    assert {
        "/health",
        "/datasets",
        "/datasets/pooled/1/archive",
        "/models/x/files/card.json",
        "/rounds/x/cancel",
        "/sites/x",
        "/foundations",
        "/audit",
    } <= checked


def test_a_researcher_finds_downloads_and_verifies_only_published_sets(service: Service) -> None:
    folder = write_pooled_version(service.settings, 1)
    service.wait_listed("datasets", 1)
    with service.client("researcher") as researcher, service.client("operator") as operator:
        assert researcher.get("/datasets").json() == []  # not published yet: invisible
        assert researcher.get("/datasets/pooled/1/card").status_code == 404
        listed = operator.get("/datasets").json()
        assert [(d["dataset_id"], d["version"], d["published"]) for d in listed] == [("pooled", 1, False)]
        assert operator.post("/datasets/pooled/1/publish").json()["published"] is True
        (entry,) = researcher.get("/datasets").json()
        assert entry["class_counts"] == {name: 2 for name in entry["class_counts"]}

        archive = researcher.get("/datasets/pooled/1/archive")
        assert archive.status_code == 200
        with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
            members = {
                m.name.removeprefix("pooled-v1/"): tar.extractfile(m).read() for m in tar if m.isfile()
            }  # type: ignore[union-attr]
        sums = members.pop("SHA256SUMS").decode().splitlines()
        assert len(sums) == len(members) == 2 * 12 + 3
        for line in sums:
            digest, _, name = line.partition("  ")
            assert hashlib.sha256(members[name]).hexdigest() == digest
        assert researcher.get("/datasets/pooled/1/SHA256SUMS").text.splitlines() == sums

        whole = (folder / "card.json").read_bytes()
        part = researcher.get("/datasets/pooled/1/files/card.json", headers={"Range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == whole[10:100]
        for sneaky in ("../../coordinator.toml", "images/../../../coordinator.db", "nothing.txt"):
            assert researcher.get(f"/datasets/pooled/1/files/{sneaky}").status_code == 404

        # Each answer means its change is stored: the very next request sees it, every time (the
        # session once committed after the response was sent, and a quick client saw the old state).
        for _ in range(20):
            assert operator.post("/datasets/pooled/1/unpublish").status_code == 200
            assert researcher.get("/datasets/pooled/1/card").status_code == 404
            assert operator.post("/datasets/pooled/1/publish").status_code == 200
            assert researcher.get("/datasets/pooled/1/card").status_code == 200
        assert operator.post("/datasets/pooled/1/unpublish").status_code == 200
        assert researcher.get("/datasets/pooled/1/archive").status_code == 404
        actions = [(e["actor"], e["action"]) for e in operator.get("/audit").json()]
        assert actions[:2] == [("test-operator", "dataset.unpublish"), ("test-operator", "dataset.publish")]

        # The catalogue lists the foundations rounds may name beside the sets: public knowledge,
        # with the hash sites check and the public corpus it learnt from, never a class label.
        (shipped,) = researcher.get("/foundations").json()
        card = (SHIPPED_FOUNDATION / "foundation.json").read_bytes()
        assert shipped["foundation_id"] == "chest-ct-cpu-v2" and shipped["origin"] == "shipped"
        assert shipped["sha256"] == hashlib.sha256(card).hexdigest()
        assert (shipped["box"], shipped["spacing_mm"], shipped["class_labels"]) == ([48, 48, 64], 4.0, False)
        assert [s["kind"] for s in shipped["corpus"]] == ["phantom-public"]


def test_tokens_are_stored_only_as_hashes_and_revoked_tokens_stop_working(service: Service) -> None:
    from coordinator.service.database import Database, database_url

    reader = Database(database_url(service.settings))
    with reader.engine.connect() as db:
        stored = b"".join(str(tuple(row)).encode() for row in db.execute(text("SELECT * FROM api_tokens")))
    reader.close()
    for token in service.tokens.values():
        assert token.encode() not in stored
        assert hashlib.sha256(token.encode()).hexdigest().encode() in stored
    from coordinator.service.tokens import TokenError, revoke_token

    db2 = Database.open(service.settings)
    with db2.session() as session:
        revoke_token(session, "test-researcher")
    with pytest.raises(TokenError), db2.session() as session:
        revoke_token(session, "test-researcher")
    db2.close()
    with service.client("researcher") as researcher:
        assert researcher.get("/datasets").status_code == 401


def test_coordinator_serve_runs_the_api_as_its_own_process(tmp_path: Path) -> None:
    config = write_coordinator_toml(tmp_path / "coordinator")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "coordinator", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, (
                    "coordinator serve did not start"
                )
                time.sleep(0.2)
        assert answer.status_code == 200 and answer.json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/datasets").status_code == 401
        # A second server on the same data folder would run a second watcher over its rounds.
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "coordinator",
                "serve",
                "--config",
                str(config),
                "--port",
                str(free_port()),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert second.returncode == 2 and "already serving the data folder" in second.stderr
        create = ["tokens", "create", "--name", "g", "--role", "site", "--site", "ghost"]
        ghost = subprocess.run(
            [sys.executable, "-m", "coordinator", *create, "--config", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert ghost.returncode == 2 and "no such site is registered" in ghost.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (tmp_path / "coordinator" / "data" / "coordinator.db").is_file()
