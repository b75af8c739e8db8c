"""What a site returns after scoring a model on its held-out real cases: metrics only, never voxels."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field, model_validator

from shared.classes import DEFAULT_CLASSES, LabelSet
from shared.schemas._base import VersionedModel
from shared.schemas.common import Identifier, Sha256, _Part


class ClassMetrics(_Part):
    auc: float | None = Field(default=None, ge=0, le=1, description="None when the class is absent locally")
    sensitivity: float | None = Field(default=None, ge=0, le=1)
    specificity: float | None = Field(default=None, ge=0, le=1)


class SiteMetricsReply(VersionedModel):
    SCHEMA_NAME = "fedsynth.site_metrics"

    round_id: Identifier
    site_id: Identifier
    model_sha256: Sha256
    classes: tuple[str, ...] = DEFAULT_CLASSES
    cases: int = Field(ge=1, description="held-out real cases scored")
    accuracy: float = Field(ge=0, le=1)
    balanced_accuracy: float = Field(ge=0, le=1)
    macro_auc: float | None = Field(default=None, ge=0, le=1)
    per_class: dict[str, ClassMetrics]
    confusion: tuple[tuple[int, ...], ...] = Field(description="rows: true class, columns: predicted class")
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="after")
    def _consistent(self) -> SiteMetricsReply:
        labels = LabelSet(self.classes)
        labels.check(self.per_class)
        n = len(labels)
        if len(self.confusion) != n or any(len(row) != n for row in self.confusion):
            raise ValueError(f"confusion must be {n}x{n}, one row and column per class")
        if any(value < 0 for row in self.confusion for value in row):
            raise ValueError("confusion counts must not be negative")
        if sum(map(sum, self.confusion)) != self.cases:
            raise ValueError("confusion counts must add up to `cases`")
        return self
