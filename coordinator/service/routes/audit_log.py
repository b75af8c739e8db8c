"""The audit log: every mutation, who made it, when. Operators only."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from coordinator.service.deps import OperatorDep, SessionDep, error_responses
from coordinator.service.models import AuditEntry

router = APIRouter(prefix="/audit", tags=["audit"], responses=error_responses(401, 403))


class AuditEntryPublic(BaseModel):
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    detail: dict[str, Any]


@router.get("", response_model=list[AuditEntryPublic])
def audit_log(
    session: SessionDep, _: OperatorDep, limit: int = Query(100, ge=1, le=10_000)
) -> list[AuditEntryPublic]:
    """The newest `limit` entries, newest first."""
    rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
    return [
        AuditEntryPublic(
            at=r.at,
            actor=r.actor,
            role=r.role,
            action=r.action,
            target=r.target,
            detail=json.loads(r.detail_json),
        )
        for r in rows
    ]
