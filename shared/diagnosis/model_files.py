"""A diagnostic model's files, apart from its networks: their names, the hash that names the whole,
and its error. What a site needs to check a model it was sent before it loads torch to score it.

    classifier.safetensors, segmenter.safetensors, head.safetensors   the weights, as the task needs
    metadata.json                                                       the card, which hashes them
"""

from __future__ import annotations

from pathlib import Path

from shared.errors import FedsynthError
from shared.hashing import file_sha256

METADATA = "metadata.json"
WEIGHTS = ("classifier", "segmenter", "head")  # <name>.safetensors, each listed in the card
MODEL_FILES = frozenset({METADATA, *(f"{name}.safetensors" for name in WEIGHTS)})


class ModelError(FedsynthError):
    """A model folder that is missing files, does not match its card, or does not fit the data."""


def model_sha256(folder: Path) -> str:
    """One hash for the whole model: its card, which holds every weight file's hash."""
    return file_sha256(folder / METADATA)
