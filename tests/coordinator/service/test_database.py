"""The schema comes from the Alembic migrations, and they match the models exactly, on SQLite and
on PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from coordinator.service.database import Database, alembic_config, make_engine, upgrade
from coordinator.service.models import Base
from tests.coordinator.service.conftest import DATABASES, POSTGRES_URL, fresh_database


@pytest.mark.parametrize("kind", DATABASES)
def test_migrations_build_exactly_the_models_schema_and_can_be_undone(kind: str, tmp_path: Path) -> None:
    with fresh_database(kind, tmp_path) as url:
        upgrade(url)
        upgrade(url)  # a second upgrade is a no-op, as at every service start
        engine = make_engine(url)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
            if kind == "sqlite":
                assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
        command.downgrade(alembic_config(url), "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade(url)
        assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
        engine.dispose()
        Database(url).close()


def test_ci_tests_postgresql_too() -> None:
    # .ci/run starts a PostgreSQL for the suite; without it the PostgreSQL cases above would not
    # exist, and a CI run must not pass silently without them.
    if os.environ.get("CI"):
        assert POSTGRES_URL, "under CI, FEDSYNTH_TEST_POSTGRES_URL must name a server (see .ci/run)"
    assert DATABASES[0] == "sqlite"
