"""Rounds: their state and reports, for operators (launching through the API comes next)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select

from coordinator.service.catalogue import sync
from coordinator.service.deps import OperatorDep, SessionDep, SettingsDep
from coordinator.service.models import Round

router = APIRouter(prefix="/rounds", tags=["rounds"])


@router.get("")
def list_rounds(session: SessionDep, settings: SettingsDep, _: OperatorDep) -> list[dict[str, Any]]:
    sync(session, settings)
    rows = session.scalars(select(Round).order_by(Round.created_at))
    return [{"round_id": r.round_id, "state": r.state, "created_at": r.created_at} for r in rows]


@router.get("/{round_id}")
def show_round(round_id: str, session: SessionDep, settings: SettingsDep, _: OperatorDep) -> dict[str, Any]:
    sync(session, settings)
    row = session.get(Round, round_id)
    if row is None or row.report_json is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no round {round_id}")
    report: dict[str, Any] = json.loads(row.report_json)
    return report
