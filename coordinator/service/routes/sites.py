"""Sites: operators see all of them; a site's token sees only its own status."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel
from sqlalchemy import select

from coordinator.service.catalogue import sync
from coordinator.service.deps import Allowed, OperatorDep, SessionDep, SettingsDep
from coordinator.service.models import Site
from coordinator.service.tokens import Caller

router = APIRouter(prefix="/sites", tags=["sites"])


class SitePublic(BaseModel):
    site_id: str
    node_id: str
    key_fingerprint: str
    added_at: datetime
    last_seen_at: datetime | None
    budget: dict[str, Any] | None


def _public(row: Site) -> SitePublic:
    return SitePublic(
        site_id=row.site_id,
        node_id=row.node_id,
        key_fingerprint=row.key_fingerprint,
        added_at=row.added_at,
        last_seen_at=row.last_seen_at,
        budget=json.loads(row.budget_json) if row.budget_json else None,
    )


@router.get("", response_model=list[SitePublic])
def list_sites(session: SessionDep, settings: SettingsDep, _: OperatorDep) -> list[SitePublic]:
    sync(session, settings)
    return [_public(row) for row in session.scalars(select(Site).order_by(Site.site_id))]


@router.get("/{site_id}", response_model=SitePublic)
def show_site(
    site_id: str,
    session: SessionDep,
    settings: SettingsDep,
    caller: Annotated[Caller, Depends(Allowed("operator", "site"))],
) -> SitePublic:
    if caller.role == "site" and caller.site_id != site_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site_id}")
    sync(session, settings)
    row = session.get(Site, site_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site_id}")
    return _public(row)
