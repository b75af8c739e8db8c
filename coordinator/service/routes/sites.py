"""Sites: operators register and see all of them; a site's token sees only its own status."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from coordinator.federation.sites import add_site
from coordinator.service.deps import (
    OperatorDep,
    OperatorOrSiteDep,
    SessionDep,
    SettingsDep,
    WatcherDep,
    error_responses,
)
from coordinator.service.models import Site
from coordinator.service.tokens import audit
from shared.schemas.common import Identifier

router = APIRouter(prefix="/sites", tags=["sites"], responses=error_responses(401, 403, 404, 409, 503))


class SiteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: Identifier = Field(description="the site's site_id in its site.toml")
    public_key: str = Field(
        min_length=16,
        max_length=4096,
        pattern=r"^ecdsa-sha2-nistp(256|384|521) [A-Za-z0-9+/=]+( [^\r\n]*)?\s*$",
        description="the site's .pub file from `site-agent keygen` (one OpenSSH line)",
    )


class SitePublic(BaseModel):
    site_id: str
    node_id: str
    key_fingerprint: str
    added_at: datetime
    last_seen_at: datetime | None
    budget: dict[str, Any] | None = Field(description="BudgetStatus as the site last reported it")


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
def list_sites(session: SessionDep, watcher: WatcherDep, _: OperatorDep) -> list[SitePublic]:
    """Every registered site, with its budget as it last reported it."""
    watcher.refresh_records()
    return [_public(row) for row in session.scalars(select(Site).order_by(Site.site_id))]


@router.post(
    "", response_model=SitePublic, status_code=status.HTTP_201_CREATED, responses=error_responses(400)
)
def register_site(
    body: SiteCreate, session: SessionDep, settings: SettingsDep, watcher: WatcherDep, caller: OperatorDep
) -> SitePublic:
    """Register a site's public key with the SuperLink (which must be running)."""
    with tempfile.TemporaryDirectory() as scratch:
        key = Path(scratch) / f"{body.site_id}.pub"
        key.write_text(body.public_key.strip() + "\n")
        site = add_site(settings, body.site_id, key)
    audit(session, caller, "site.register", site.site_id, node_id=str(site.node_id))
    watcher.refresh_records()
    row = session.get(Site, site.site_id)
    assert row is not None  # refresh_records recorded it, in a transaction of its own
    return _public(row)


@router.get("/{site_id}", response_model=SitePublic)
def show_site(
    site_id: str, session: SessionDep, watcher: WatcherDep, caller: OperatorOrSiteDep
) -> SitePublic:
    """One site's status; a site's own token may ask for its own site only."""
    if caller.role == "site" and caller.site_id != site_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site_id}")
    watcher.refresh_records()
    row = session.get(Site, site_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site_id}")
    return _public(row)
