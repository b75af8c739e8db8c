"""A foundation's files, apart from its networks: their names, the hash that names the whole, and
its error. What a site needs to answer "do you hold this foundation?", and to cache one it is
sent, without loading torch: the files are checked against the card by hash, so a cached
foundation is byte for byte the one the coordinator checked whole (`load_foundation`) when it was
added to its catalogue.

    autoencoder.safetensors, denoiser.safetensors   the weights
    foundation.json                                  the card, which hashes every other file
    anatomy.safetensors                              optional: the public anatomy bank
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from shared.errors import FedsynthError
from shared.hashing import file_sha256
from shared.schemas import SchemaError
from shared.schemas.foundation_card import FoundationCard

CARD = FoundationCard.FILE_NAME
WEIGHTS = ("autoencoder", "denoiser")  # <name>.safetensors
ANATOMY = "anatomy"  # anatomy.safetensors, key "images": (K, X, Y, Z) uint8
FOUNDATION_FILES = frozenset({CARD, *(f"{name}.safetensors" for name in WEIGHTS)})
ANATOMY_FILE = f"{ANATOMY}.safetensors"


class FoundationError(FedsynthError):
    """A foundation folder that is missing files, does not match its card or the hash asked for."""


def foundation_sha256(folder: Path) -> str:
    card = folder / CARD
    if not card.is_file():
        raise FoundationError(f"{folder} is not a foundation: it has no {CARD}")
    return file_sha256(card)


def foundation_files(folder: Path) -> dict[str, bytes]:
    """Every file of the foundation in `folder`, by name: what the coordinator sends a site."""
    names = sorted(FOUNDATION_FILES | {ANATOMY_FILE})
    return {name: (folder / name).read_bytes() for name in names if (folder / name).is_file()}


def checked_card(folder: Path, *, sha256: str | None = None) -> FoundationCard:
    """The card of the foundation in `folder`, once the card matches `sha256` (when given) and
    every file the card lists matches its hash there."""
    actual = foundation_sha256(folder)
    if sha256 is not None and actual != sha256:
        raise FoundationError(
            f"foundation {folder.name}: its card's sha256 is {actual}, not {sha256} as asked"
        )
    try:
        card = FoundationCard.read(folder / CARD)
    except SchemaError as exc:
        raise FoundationError(f"foundation {folder.name}: {exc}") from None
    missing_from_card = sorted(set(WEIGHTS) - set(card.weights_sha256))
    if missing_from_card:
        raise FoundationError(f"foundation {folder.name}: its card lists no hash for {missing_from_card}")
    for name, digest in card.weights_sha256.items():
        path = folder / f"{name}.safetensors"
        if not path.is_file():
            raise FoundationError(f"foundation {folder.name}: {path.name} is missing")
        if file_sha256(path) != digest:
            raise FoundationError(f"foundation {folder.name}: {path.name} does not match its card's sha256")
    return card


def install_foundation(files: dict[str, bytes], destination: Path, *, sha256: str) -> None:
    """Make `destination` the foundation `files` hold, only if they are a whole foundation whose
    card has `sha256`: written beside it, checked file by file against the card, then renamed into
    place, so a reader never meets half a foundation. A destination already there is kept."""
    unknown = sorted(set(files) - FOUNDATION_FILES - {ANATOMY_FILE})
    if unknown:
        raise FoundationError(f"the foundation sent holds files no foundation has: {unknown}")
    missing = sorted(FOUNDATION_FILES - set(files))
    if missing:
        raise FoundationError(f"the foundation sent lacks {', '.join(missing)}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        checked_card(staging, sha256=sha256)
        if not destination.exists():
            staging.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
