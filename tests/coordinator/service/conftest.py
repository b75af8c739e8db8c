"""A real coordinator API: uvicorn on a free loopback port, its own data folder and database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn

from coordinator.config import CoordinatorSettings, load_coordinator_settings
from coordinator.coordinator_toml import write_coordinator_toml
from coordinator.federation.pooling import pooled_root
from coordinator.service.app import create_app
from coordinator.service.database import Database
from coordinator.service.tokens import ROLES, create_token
from shared.classes import DEFAULT_CLASSES
from shared.federation.processes import free_port
from shared.schemas import DatasetCard
from shared.synthetic_set import SetItem, write_synthetic_set


@dataclass
class Service:
    url: str
    settings: CoordinatorSettings
    tokens: dict[str, str]  # role -> token

    def client(self, role: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


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
def running_api(settings: CoordinatorSettings, database: Database) -> Iterator[str]:
    """The API under a real uvicorn server on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, database), host="127.0.0.1", port=port, ws="none", log_level="warning"
    )
    server = uvicorn.Server(config)
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


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    config = write_coordinator_toml(tmp_path / "coordinator")
    settings = load_coordinator_settings(config)
    database = Database.open(settings)
    tokens = make_tokens(database)
    with running_api(settings, database) as url:
        yield Service(url, settings, tokens)
