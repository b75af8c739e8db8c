"""Fixtures shared by the whole suite: phantom data is built once per session, at test size."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.phantom import PhantomRequest, PhantomSummary, write_phantom

# Test size: small enough for a 2-core CI machine, large enough that every structure shows.
TEST_MATRIX = 96
TEST_SLICE_MM = 5.0


@pytest.fixture(scope="session")
def phantom_site(tmp_path_factory: pytest.TempPathFactory) -> PhantomSummary:
    """One study of each class plus every defect, as a site would receive them (profile site_b)."""
    out = tmp_path_factory.mktemp("phantom") / "site_b"
    request = PhantomRequest(
        out=out,
        cases=6,
        profile="site_b",
        seed=11,
        matrix=TEST_MATRIX,
        slice_mm=TEST_SLICE_MM,
        balanced=True,
        defects=True,
        preview=True,
    )
    return write_phantom(request)


# Variables that tell the tests where their data and services are, not product settings.
TEST_INFRASTRUCTURE = {"FEDSYNTH_REAL_CT", "FEDSYNTH_TEST_POSTGRES_URL"}


@pytest.fixture(autouse=True)
def _no_fedsynth_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not pick up settings from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("FEDSYNTH_") and name not in TEST_INFRASTRUCTURE:
            monkeypatch.delenv(name)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
