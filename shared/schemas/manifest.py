"""What a site sends back with its synthetic volumes: the list of files and what the release cost."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from pydantic import Field, model_validator

from shared.classes import DEFAULT_CLASSES, LabelSet
from shared.schemas._base import VersionedModel
from shared.schemas.common import (
    GeneratorInfo,
    Identifier,
    PrivacySpend,
    RelativePath,
    Sha256,
    Shape3D,
    Spacing3D,
    _Part,
)


class ManifestItem(_Part):
    image: RelativePath
    mask: RelativePath
    label: str
    image_sha256: Sha256
    mask_sha256: Sha256


class SyntheticSetManifest(VersionedModel):
    SCHEMA_NAME = "fedsynth.synthetic_set_manifest"

    round_id: Identifier
    site_id: Identifier
    classes: tuple[str, ...] = DEFAULT_CLASSES
    volume_shape: Shape3D
    spacing_mm: Spacing3D
    privacy: PrivacySpend
    generator: GeneratorInfo
    items: tuple[ManifestItem, ...] = Field(min_length=1)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="after")
    def _consistent(self) -> SyntheticSetManifest:
        labels = LabelSet(self.classes)
        files: set[str] = set()
        for n, item in enumerate(self.items):
            if item.label not in labels:
                raise ValueError(
                    f"items.{n}.label {item.label!r} is not one of the classes {list(self.classes)}"
                )
            for path in (item.image, item.mask):
                if path in files:
                    raise ValueError(f"items.{n}: file {path!r} is listed twice")
                files.add(path)
        return self

    def class_counts(self) -> dict[str, int]:
        counts = Counter(item.label for item in self.items)
        return {name: counts.get(name, 0) for name in self.classes}
