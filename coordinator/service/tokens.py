"""API tokens and roles. A token is shown once when made; the database keeps only its SHA-256.

operator    manages sites, rounds and publishing, reads everything
researcher  reads and downloads published datasets and models, nothing else
site        reads its own site's status
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from coordinator.errors import CoordinatorError
from coordinator.service.models import ApiToken, AuditEntry

Role = Literal["operator", "researcher", "site"]
ROLES: tuple[Role, ...] = get_args(Role)
PREFIX = "fst_"
LAST_USED_PRECISION = timedelta(minutes=1)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TokenError(CoordinatorError):
    """A token cannot be made or used: bad name or role, a name already taken, unknown or revoked."""


@dataclass(frozen=True)
class Caller:
    """Who is asking, as far as the API is concerned."""

    name: str
    role: Role
    site_id: str | None = None


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def audit(session: Session, caller: Caller, action: str, target: str, **detail: object) -> None:
    """Record a mutation; written in the same transaction as the change it describes."""
    session.add(
        AuditEntry(
            actor=caller.name,
            role=caller.role,
            action=action,
            target=target,
            detail_json=json.dumps(detail, default=str, sort_keys=True),
        )
    )


CLI = Caller(name="cli", role="operator")


def create_token(session: Session, *, name: str, role: str, site_id: str | None = None) -> str:
    if not _NAME.match(name):
        raise TokenError(f"token name {name!r}: use 1-64 letters, digits, '_', '.' or '-'")
    if role not in ROLES:
        raise TokenError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    if (role == "site") != (site_id is not None):
        raise TokenError("a site token needs --site ID, and only a site token takes one")
    if session.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
        raise TokenError(f"a token named {name!r} exists already; revoke it or choose another name")
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, role=role, site_id=site_id, token_sha256=token_sha256(token)))
    audit(session, CLI, "token.create", name, role=role, site_id=site_id)
    return token


def revoke_token(session: Session, name: str) -> None:
    row = session.scalar(select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None)))
    if row is None:
        raise TokenError(f"no active token named {name!r}")
    row.revoked_at = datetime.now(UTC)
    audit(session, CLI, "token.revoke", name)


def caller_for(session: Session, token: str) -> Caller | None:
    """The caller a presented token stands for, or None if it is unknown or revoked."""
    row = session.scalar(
        select(ApiToken).where(ApiToken.token_sha256 == token_sha256(token), ApiToken.revoked_at.is_(None))
    )
    if row is None:
        return None
    now = datetime.now(UTC)
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_PRECISION:
        row.last_used_at = now  # to the minute: a write on every request would cost every request
    return Caller(name=row.name, role=row.role, site_id=row.site_id)  # type: ignore[arg-type]
