"""The dataset card of a pooled synthetic set: what a researcher reads before using it."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field, model_validator

from shared.classes import DEFAULT_CLASSES, LabelSet
from shared.schemas._base import VersionedModel
from shared.schemas.common import GeneratorInfo, Identifier, PrivacySpend, Shape3D, Spacing3D, _Part


class SiteContribution(_Part):
    site_id: Identifier
    round_id: Identifier
    samples: int = Field(ge=0)
    privacy: PrivacySpend
    generator: GeneratorInfo


class DatasetCard(VersionedModel):
    SCHEMA_NAME = "fedsynth.dataset_card"

    dataset_id: Identifier
    version: int = Field(ge=1)
    description: str = ""
    licence: str = "CC-BY-4.0"
    classes: tuple[str, ...] = DEFAULT_CLASSES
    class_counts: dict[str, int]
    volume_shape: Shape3D
    spacing_mm: Spacing3D
    intensity: str = Field(
        default="CT window [-160, 240] HU scaled to [-1, 1]",
        description="how voxel values map to Hounsfield units",
    )
    sites: tuple[SiteContribution, ...] = ()
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="after")
    def _counts_match_classes(self) -> DatasetCard:
        LabelSet(self.classes).check(self.class_counts)
        if any(count < 0 for count in self.class_counts.values()):
            raise ValueError("class_counts must not be negative")
        return self
