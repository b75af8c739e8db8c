"""The coordinator's database tables (SQLAlchemy 2). The schema itself is owned by the Alembic
migrations in `coordinator/service/migrations`; a test checks the two agree.

Flower node ids are unsigned 64-bit numbers, beyond a signed BIGINT: they are stored as text.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Site(Base):
    __tablename__ = "sites"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(24), unique=True)
    key_fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    budget_json: Mapped[str | None] = mapped_column(Text, doc="BudgetStatus as the site last reported it")


class Round(Base):
    __tablename__ = "rounds"

    round_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    flower_run_id: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
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
    card_json: Mapped[str] = mapped_column(Text)
    location: Mapped[str] = mapped_column(Text, doc="the set's folder in the object store")
    published: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    files: Mapped[list[DatasetFile]] = relationship(back_populates="dataset", cascade="all, delete-orphan")


class DatasetFile(Base):
    __tablename__ = "dataset_files"
    __table_args__ = (UniqueConstraint("dataset_pk", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_pk: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    path: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    dataset: Mapped[Dataset] = relationship(back_populates="files")


class Model(Base):
    __tablename__ = "models"

    model_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(64), index=True)
    card_json: Mapped[str] = mapped_column(Text)
    location: Mapped[str] = mapped_column(Text)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    site_id: Mapped[str | None] = mapped_column(String(64), doc="for role site: the one site it may see")
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True, doc="only the hash is ever stored")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64), doc="token name, or `cli` for local commands")
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    detail_json: Mapped[str] = mapped_column(Text, default="{}")
