"""What a site returns after scoring a model on its held-out real cases: metrics only, never voxels.

Every figure carries the number of cases it rests on and a bootstrap 95% interval over the
site's cases. A figure that too few cases cannot estimate has no value and says why in `note`:
a site with four held-out patients must not print an AUC of 0.00 that a reader would believe.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field, model_validator

from shared.classes import DEFAULT_CLASSES, LabelSet
from shared.schemas._base import VersionedModel
from shared.schemas.common import Identifier, Sha256, _Part


class Figure(_Part):
    value: float | None = Field(default=None, ge=0, le=1, description="None: not estimated (see note)")
    ci95_low: float | None = Field(default=None, ge=0, le=1, description="bootstrap 95% interval, over cases")
    ci95_high: float | None = Field(default=None, ge=0, le=1)
    cases: int = Field(default=0, ge=0, description="the cases this figure rests on")
    note: str | None = Field(default=None, max_length=200, description="why there is no value")

    def text(self, digits: int = 2) -> str:
        """How tables print it: `0.81 [0.70, 0.90] n=24`, or `n/a: only 4 cases (n=4)`."""
        if self.value is None:
            return f"n/a: {self.note or 'not estimated'} (n={self.cases})"
        if self.ci95_low is None or self.ci95_high is None:
            return f"{self.value:.{digits}f} n={self.cases}"
        low, high = f"{self.ci95_low:.{digits}f}", f"{self.ci95_high:.{digits}f}"
        return f"{self.value:.{digits}f} [{low}, {high}] n={self.cases}"


class ClassMetrics(_Part):
    cases: int = Field(default=0, ge=0, description="held-out cases of this class")
    auc: Figure = Field(default_factory=Figure)
    sensitivity: Figure = Field(default_factory=Figure)
    specificity: Figure = Field(default_factory=Figure)
    dice: Figure | None = Field(default=None, description="lesion Dice, when the model segments")


class SiteMetricsReply(VersionedModel):
    SCHEMA_NAME = "fedsynth.site_metrics"
    SCHEMA_VERSION = 2  # 2: every figure with its cases, interval and note

    round_id: Identifier
    site_id: Identifier
    model_sha256: Sha256
    classes: tuple[str, ...] = DEFAULT_CLASSES
    cases: int = Field(ge=1, description="held-out real cases scored")
    accuracy: Figure
    balanced_accuracy: Figure
    macro_auc: Figure
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
