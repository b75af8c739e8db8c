"""The audit log: every mutation, who made it, when. Operators only."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from coordinator.service.deps import OperatorDep, SessionDep
from coordinator.service.models import AuditEntry

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("")
def audit_log(
    session: SessionDep, _: OperatorDep, limit: int = Query(100, ge=1, le=10_000)
) -> list[dict[str, Any]]:
    rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
    return [
        {
            "at": r.at,
            "actor": r.actor,
            "role": r.role,
            "action": r.action,
            "target": r.target,
            "detail": json.loads(r.detail_json),
        }
        for r in rows
    ]
