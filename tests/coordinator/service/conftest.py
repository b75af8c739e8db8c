"""A real coordinator API: uvicorn on a free loopback port, its own data folder and database."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from sqlalchemy import create_engine, make_url, text

from coordinator.config import CoordinatorSettings, load_coordinator_settings
from coordinator.coordinator_toml import write_coordinator_toml
from coordinator.federation.pooling import pooled_root
from coordinator.service.app import create_app
from coordinator.service.database import Database
from coordinator.service.object_store import ObjectStore
from coordinator.service.request_limits import server_config
from coordinator.service.tokens import ROLES, create_token
from shared.classes import DEFAULT_CLASSES
from shared.federation.processes import free_port
from shared.schemas import DatasetCard
from shared.synthetic_set import SetItem, write_synthetic_set

WATCH_S = 0.2  # the watcher's interval in tests: new pooled sets are recorded within a moment


@dataclass
class Service:
    url: str
    settings: CoordinatorSettings
    config: Path
    tokens: dict[str, str]  # role -> token

    def client(self, role: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def wait_listed(self, kind: str, count: int) -> list[dict[str, Any]]:
        """Wait until the operator sees `count` datasets or models (the watcher records them)."""
        return wait_listed(self.url, self.tokens["operator"], kind, count)


def wait_listed(url: str, operator_token: str, kind: str, count: int, timeout: float = 60) -> list[Any]:
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {operator_token}"}
    while True:
        listed: list[Any] = httpx.get(f"{url}/{kind}", headers=headers, timeout=30).json()
        if len(listed) >= count:
            return listed
        assert time.monotonic() < deadline, f"the service recorded {len(listed)} {kind}, not {count}"
        time.sleep(WATCH_S)


def write_pooled_version(settings: CoordinatorSettings, version: int, per_class: int = 2) -> Path:
    rng = np.random.default_rng(version)
    items = [
        SetItem(
            name=f"item-{k}-{n}",
            image=rng.uniform(-1, 1, (16, 16, 16)).astype(np.float32),
            mask=(rng.random((16, 16, 16)) > 0.9).astype(np.uint8),
            label=name,
            site="site_a",
        )
        for k, name in enumerate(DEFAULT_CLASSES)
        for n in range(per_class)
    ]
    card = DatasetCard(
        dataset_id="pooled",
        version=version,
        class_counts={name: per_class for name in DEFAULT_CLASSES},
        volume_shape=(16, 16, 16),
        spacing_mm=(4.0, 4.0, 4.0),
    )
    folder = pooled_root(settings) / f"v{version}"
    write_synthetic_set(folder, items, card, spacing_mm=4.0)
    return folder


@contextmanager
def running_api(
    settings: CoordinatorSettings,
    config_file: Path,
    database: Database | None = None,
    store: ObjectStore | None = None,
) -> Iterator[str]:
    """The API under a real uvicorn server on a free loopback port; yields its base URL."""
    port = free_port()
    app = create_app(settings, config_file, database=database, store=store, watch_interval_s=WATCH_S)
    server = uvicorn.Server(server_config(app, "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def make_tokens(database: Database) -> dict[str, str]:
    with database.session() as session:
        return {
            role: create_token(
                session, name=f"test-{role}", role=role, site_id="site_a" if role == "site" else None
            )
            for role in ROLES
        }


# PostgreSQL is tested where FEDSYNTH_TEST_POSTGRES_URL names a server (.ci/run starts one, and
# under CI a missing one fails test_database); SQLite always.
POSTGRES_URL = os.environ.get("FEDSYNTH_TEST_POSTGRES_URL", "")
DATABASES = ["sqlite", *(["postgresql"] if POSTGRES_URL else [])]


@contextmanager
def fresh_database(kind: str, folder: Path) -> Iterator[str]:
    """The URL of an empty database of `kind`: a file in `folder`, or a new PostgreSQL database
    (dropped afterwards) on the test server."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'coordinator.db'}"
        return
    name = "fedsynth_" + secrets.token_hex(6)
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def coordinator_using(folder: Path, database_url: str) -> Path:
    """A coordinator.toml in `folder` whose database is `database_url`."""
    config = write_coordinator_toml(folder)
    if not database_url.startswith("sqlite"):
        settings_text = config.read_text()
        marker = 'db.example.org/fedsynth".\nurl = ""'
        assert marker in settings_text
        config.write_text(settings_text.replace(marker, marker.replace('""', f'"{database_url}"')))
    return config


@contextmanager
def _service(kind: str, tmp_path: Path) -> Iterator[Service]:
    with fresh_database(kind, tmp_path / "coordinator" / "data") as url:
        config = coordinator_using(tmp_path / "coordinator", url)
        settings = load_coordinator_settings(config)
        database = Database.open(settings)
        tokens = make_tokens(database)
        with running_api(settings, config, database) as api:
            yield Service(api, settings, config, tokens)
        database.close()


@pytest.fixture(params=DATABASES)
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    """A running API on each database the suite tests."""
    with _service(request.param, tmp_path) as running:
        yield running


@pytest.fixture
def sqlite_service(tmp_path: Path) -> Iterator[Service]:
    """A running API on SQLite, for tests of what does not depend on the database."""
    with _service("sqlite", tmp_path) as running:
        yield running
