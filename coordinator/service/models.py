"""The coordinator's database tables (SQLAlchemy 2). The schema itself is owned by the Alembic
migrations in `coordinator/service/migrations`; a test checks the two agree.

Flower node ids are unsigned 64-bit numbers, beyond a signed BIGINT: they are stored as text.
`location` columns name a prefix in the object store; a row exists only once every object under it
is in place and checked (`coordinator.service.catalogue`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that comes back with its time zone (UTC) on every database: SQLite drops it,
    and the API's contract promises RFC 3339 date-times."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamps must carry a time zone")
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Site(Base):
    __tablename__ = "sites"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(24), unique=True)
    key_fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    budget_json: Mapped[str | None] = mapped_column(Text, doc="BudgetStatus as the site last reported it")


class Round(Base):
    """A round's state machine as the ServerApp last wrote it (launched -> ... -> completed, or
    failed / cancelled), with when it was launched, last changed and finished, and by whom."""

    __tablename__ = "rounds"

    round_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    flower_run_id: Mapped[str | None] = mapped_column(String(24))
    launched_by: Mapped[str] = mapped_column(String(64), default="cli")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    request_json: Mapped[str] = mapped_column(Text)
    report_json: Mapped[str | None] = mapped_column(Text)
    results: Mapped[list[SiteResult]] = relationship(back_populates="round", cascade="all, delete-orphan")


class SiteResult(Base):
    __tablename__ = "site_results"

    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.round_id"), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    synthesis: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    samples: Mapped[int] = mapped_column(Integer, default=0)
    epsilon: Mapped[float | None]
    evaluation: Mapped[str | None] = mapped_column(String(16))
    metrics_json: Mapped[str | None] = mapped_column(Text)
    round: Mapped[Round] = relationship(back_populates="results")


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    round_id: Mapped[str | None] = mapped_column(String(64), doc="the round that built this version")
    card_json: Mapped[str] = mapped_column(Text)
    location: Mapped[str] = mapped_column(Text, doc="the set's prefix in the object store")
    published: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    files: Mapped[list[DatasetFile]] = relationship(back_populates="dataset", cascade="all, delete-orphan")


class DatasetFile(Base):
    __tablename__ = "dataset_files"
    __table_args__ = (UniqueConstraint("dataset_pk", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_pk: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    path: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    dataset: Mapped[Dataset] = relationship(back_populates="files")


class Model(Base):
    """A diagnostic model a round trained; its card is the bundle's metadata.json."""

    __tablename__ = "models"

    model_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(64), index=True)
    card_json: Mapped[str] = mapped_column(Text)
    location: Mapped[str] = mapped_column(Text, doc="the bundle's prefix in the object store")
    published: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    files: Mapped[list[ModelFile]] = relationship(back_populates="model", cascade="all, delete-orphan")


class ModelFile(Base):
    __tablename__ = "model_files"
    __table_args__ = (UniqueConstraint("model_sha256", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_sha256: Mapped[str] = mapped_column(ForeignKey("models.model_sha256"), index=True)
    path: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    model: Mapped[Model] = relationship(back_populates="files")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    site_id: Mapped[str | None] = mapped_column(String(64), doc="for role site: the one site it may see")
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True, doc="only the hash is ever stored")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64), doc="token name, or `cli` for local commands")
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    detail_json: Mapped[str] = mapped_column(Text, default="{}")
