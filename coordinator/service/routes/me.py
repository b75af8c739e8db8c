"""Who a token belongs to: its name and role, for clients that adapt to the caller (the dashboard
shows an operator's pages or a researcher's)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from coordinator.service.deps import AnyRoleDep, error_responses

router = APIRouter(tags=["tokens"], responses=error_responses(401))


class MePublic(BaseModel):
    name: str
    role: str
    site_id: str | None


@router.get("/me", response_model=MePublic)
def me(caller: AnyRoleDep) -> MePublic:
    """The calling token's name and role (and, for a site token, its site)."""
    return MePublic(name=caller.name, role=caller.role, site_id=caller.site_id)
