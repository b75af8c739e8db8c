"""Health: the one route anyone may call (for load balancers and monitoring)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import text

from coordinator.service.deps import PUBLIC, SessionDep
from shared import __version__

router = APIRouter(tags=["health"])


@router.get("/health")
def health(session: SessionDep, _: Annotated[None, Depends(PUBLIC)]) -> dict[str, str]:
    session.execute(text("SELECT 1"))  # the database answers
    return {"status": "ok", "version": __version__}
