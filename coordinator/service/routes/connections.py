"""Which registered sites the SuperLink counts as connected right now (operators)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel

from coordinator.federation.sites import list_sites, online_node_ids
from coordinator.service.deps import OperatorDep, SettingsDep, error_responses

router = APIRouter(tags=["sites"], responses=error_responses(401, 403, 409, 503))


class ConnectionsPublic(BaseModel):
    checked_at: datetime
    online: list[str]
    offline: list[str]


@router.get("/connections", response_model=ConnectionsPublic)
def connections(settings: SettingsDep, _: OperatorDep) -> ConnectionsPublic:
    """Registered sites split into those connected to the SuperLink now and the others; asks the
    SuperLink (503 when it does not answer, 409 when its certificates are not set up)."""
    registered = list_sites(settings)
    online = online_node_ids(settings)
    return ConnectionsPublic(
        checked_at=datetime.now(UTC),
        online=sorted(site for site, s in registered.items() if s.node_id in online),
        offline=sorted(site for site, s in registered.items() if s.node_id not in online),
    )
