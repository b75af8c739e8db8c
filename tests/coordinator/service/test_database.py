"""The schema comes from the Alembic migrations, and they match the models exactly."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from coordinator.service.database import Database, make_engine, upgrade
from coordinator.service.models import Base


def test_migrations_build_exactly_the_models_schema_on_sqlite_in_wal_mode(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'coordinator.db'}"
    upgrade(url)
    upgrade(url)  # a second upgrade is a no-op, as at every service start
    engine = make_engine(url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
    engine.dispose()
    Database(url).close()
