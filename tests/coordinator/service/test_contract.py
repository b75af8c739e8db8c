"""The OpenAPI document is the API's contract: it is pinned by a snapshot, and the live server is
fuzzed against it (schemathesis, a bounded number of examples per operation).

After a deliberate change of the API, rewrite the snapshot with
`UPDATE_OPENAPI_SNAPSHOT=1 scripts/test tests/coordinator/service/test_contract.py` and review
its diff like code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from coordinator.config import load_coordinator_settings
from coordinator.coordinator_toml import write_coordinator_toml
from coordinator.service.app import create_app
from coordinator.service.database import Database
from tests.coordinator.service.conftest import make_tokens, running_api, wait_listed, write_pooled_version

SNAPSHOT = Path(__file__).with_name("openapi.snapshot.json")


def test_the_openapi_document_matches_its_snapshot(tmp_path: Path) -> None:
    config = write_coordinator_toml(tmp_path / "coordinator")
    document = create_app(load_coordinator_settings(config), config).openapi()
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_OPENAPI_SNAPSHOT"):
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), (
        "the API's contract changed; if that was meant, rewrite the snapshot (see this module's docstring)"
    )


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    config = write_coordinator_toml(tmp_path_factory.mktemp("contract") / "coordinator")
    coordinator = load_coordinator_settings(config)
    write_pooled_version(coordinator, 1)
    database = Database.open(coordinator)
    tokens = make_tokens(database)
    with running_api(coordinator, config, database) as url:
        wait_listed(url, tokens["operator"], "datasets", 1)
        yield url, {"Authorization": f"Bearer {tokens['operator']}"}
    database.close()


def _contract() -> Any:
    """The schema as the app builds it (loading it from the live server would need schemathesis'
    fixture loader, which pytest 9 breaks); the cases are then sent to the live server."""
    scratch = Path(tempfile.mkdtemp(prefix="fedsynth-contract-"))
    config = write_coordinator_toml(scratch / "coordinator")
    document = create_app(load_coordinator_settings(config), config).openapi()
    shutil.rmtree(scratch)
    # Registering a site needs a running SuperLink; the federation tests cover that route.
    return schemathesis.openapi.from_dict(document).exclude(method="POST", path="/sites")


schema = _contract()


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_live_server_keeps_its_contract(case: Any, live_api: tuple[str, dict[str, str]]) -> None:
    url, operator = live_api
    case.call_and_validate(base_url=url, headers=operator)
