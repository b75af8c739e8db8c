"""The card of a foundation model: what it was trained on, how, and the hash of every weight file.

A foundation is public knowledge (trained on public CT only, without DP), so its card says exactly
what that public corpus was: each source's kind, size and licence, and that it held no class label.
A round names a foundation by id and by the sha256 of this card, which holds the weights' hashes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from shared.schemas._base import VersionedModel
from shared.schemas.common import Identifier, Sha256, _Part


class CorpusSource(_Part):
    """One part of the public corpus."""

    kind: Literal["phantom-public", "nifti", "dicom"]
    description: str  # e.g. "phantom profile public, seed 7" or a folder's name, never a patient's
    cases: int = Field(ge=1)
    licence: str
    lesion_masks: bool  # whether its masks (lung nodules, say) were trained on


class FoundationCard(VersionedModel):
    SCHEMA_NAME = "fedsynth.foundation_card"
    FILE_NAME: ClassVar[str] = "foundation.json"  # in the foundation's folder; its sha256 is the foundation's

    foundation_id: Identifier
    description: str = ""
    spec: dict[str, Any]  # shared.foundation.networks.FoundationSpec, as JSON
    scale_factor: float = Field(gt=0, description="latents are multiplied by it to unit spread")
    corpus: tuple[CorpusSource, ...] = Field(min_length=1)
    class_labels: Literal[False] = False  # a foundation never learns a class: the hospitals teach it
    training: dict[str, Any]  # epochs, steps, final losses, seconds, threads
    weights_sha256: dict[str, Sha256]  # autoencoder, denoiser and, with a bank, anatomy
    # The public anatomy bank's boxes (shared.foundation.anatomy), if the foundation carries one.
    anatomy_sources: tuple[CorpusSource, ...] = ()
    versions: dict[str, str]
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def draws(self) -> tuple[tuple[int, int, int], float]:
        """The box (x, y, z voxels) and spacing (mm) the foundation draws, from its spec."""
        x, y, z = (int(n) for n in self.spec["box"])
        return (x, y, z), float(self.spec["spacing_mm"])
