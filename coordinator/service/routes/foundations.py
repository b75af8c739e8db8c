"""Foundations: the public models a round may name (`coordinator foundation list`), each with what
public data taught it. Public knowledge, so operators and researchers alike may read the list."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from coordinator.foundation.catalogue import list_foundations
from coordinator.service.deps import ReaderDep, SettingsDep, error_responses
from shared.schemas import CorpusSource

router = APIRouter(prefix="/foundations", tags=["foundations"], responses=error_responses(401, 403))


class FoundationPublic(BaseModel):
    foundation_id: str
    sha256: str
    box: tuple[int, int, int]
    spacing_mm: float
    description: str
    corpus: list[CorpusSource]
    anatomy_sources: list[CorpusSource]
    class_labels: bool
    origin: Literal["shipped", "added"]
    created_at: datetime


@router.get("", response_model=list[FoundationPublic])
def list_foundations_route(settings: SettingsDep, _: ReaderDep) -> list[FoundationPublic]:
    """Every foundation a round may name, with its sha256 (what each site checks), the box it
    draws, and its public corpus; no foundation ever learnt a class label."""
    listed = []
    for found in list_foundations(settings).values():
        box, spacing_mm = found.card.draws
        listed.append(
            FoundationPublic(
                foundation_id=found.foundation_id,
                sha256=found.sha256,
                box=box,
                spacing_mm=spacing_mm,
                description=found.card.description,
                corpus=list(found.card.corpus),
                anatomy_sources=list(found.card.anatomy_sources),
                class_labels=found.card.class_labels,
                origin="shipped" if found.shipped else "added",
                created_at=found.card.created_at,
            )
        )
    return listed
