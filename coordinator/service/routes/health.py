"""Health: the one route anyone may call (for load balancers and monitoring)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import text

from coordinator.service.deps import PUBLIC, SessionDep
from shared import __version__

router = APIRouter(tags=["health"])


class HealthPublic(BaseModel):
    status: str
    version: str


@router.get("/health", response_model=HealthPublic)
def health(session: SessionDep, _: Annotated[None, Depends(PUBLIC)]) -> HealthPublic:
    """`ok` once the database answers; needs no token."""
    session.execute(text("SELECT 1"))
    return HealthPublic(status="ok", version=__version__)
