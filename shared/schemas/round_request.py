"""What the coordinator asks of a site in one round (`query.synthesize`)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field, field_validator, model_validator

from shared.classes import DEFAULT_CLASSES, LabelSet
from shared.schemas._base import VersionedModel
from shared.schemas.common import Identifier, Sha256, Shape3D, Spacing3D


class RoundRequest(VersionedModel):
    SCHEMA_NAME = "fedsynth.round_request"
    SCHEMA_VERSION = 2  # 2: the round names its public foundation (id and sha256)

    round_id: Identifier
    epsilon: float = Field(gt=0, description="epsilon the site is asked to spend; the site may refuse")
    delta: float | None = Field(
        default=None,
        gt=0,
        le=1e-5,
        description="the largest delta the site may use; None: the site's own min(ceiling, 1/(10 N))",
    )
    per_class: int = Field(ge=1, le=10_000, description="synthetic samples per class")
    classes: tuple[str, ...] = DEFAULT_CLASSES
    volume_shape: Shape3D = (64, 64, 64)
    spacing_mm: Spacing3D = (2.0, 2.0, 2.0)
    generator: Identifier = "lesionstats"
    # The public foundation every site starts from, named by id and by its card's sha256; the
    # coordinator sends it (`query.foundation`) to a site that does not hold it yet. None: each site
    # uses the foundation of its own settings (or, for dpgan3d, none).
    foundation_id: Identifier | None = None
    foundation_sha256: Sha256 | None = None
    timeout_s: float = Field(default=3600.0, gt=0, le=7 * 24 * 3600)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("classes")
    @classmethod
    def _valid_label_set(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        LabelSet(value)
        return value

    @model_validator(mode="after")
    def _foundation_named_by_both(self) -> RoundRequest:
        if (self.foundation_id is None) != (self.foundation_sha256 is None):
            raise ValueError("a round names its foundation by both foundation_id and foundation_sha256")
        return self

    @model_validator(mode="after")
    def _finite_epsilon_only(self) -> RoundRequest:
        # Non-private training is a site-local benchmarking switch, never something a round can ask for.
        if self.epsilon == float("inf"):
            raise ValueError("a round cannot ask for epsilon = inf; non-private runs are site-local only")
        return self
