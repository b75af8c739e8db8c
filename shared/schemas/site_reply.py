"""What a site says besides data: its budget as it stands, and why it declined a request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from shared.schemas._base import VersionedModel
from shared.schemas.common import Identifier, Sha256, _Part

# Why a site declined. Each reason maps to a fixed sentence the site writes itself (never an
# exception's text, which could name a local path), so operators can act without site logs.
RefusalReason = Literal["budget", "audit", "not_ready", "invalid_request", "internal"]


class BudgetStatus(_Part):
    """The site's own ledger, as the site reports it: the coordinator can ask, only the site decides."""

    spent: float = Field(
        ge=0, description="epsilon composed over every release so far; inf if any was not private"
    )
    cap: float = Field(gt=0)
    delta: float = Field(ge=0, le=1e-3)
    accountant: str


class Refusal(VersionedModel):
    SCHEMA_NAME = "fedsynth.refusal"

    round_id: Identifier
    site_id: Identifier
    reason: RefusalReason
    detail: str = Field(max_length=500)
    budget: BudgetStatus | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class FoundationHeld(VersionedModel):
    """A site's answer to `query.foundation`: whether it now holds the round's public foundation,
    verified against its sha256, in its cache."""

    SCHEMA_NAME = "fedsynth.foundation_held"

    round_id: Identifier
    site_id: Identifier
    foundation_id: Identifier
    foundation_sha256: Sha256
    held: bool


class EvaluateRequest(VersionedModel):
    """Sent with a model's files: score this model on your held-out real cases."""

    SCHEMA_NAME = "fedsynth.evaluate_request"

    round_id: Identifier
    model_sha256: Sha256
