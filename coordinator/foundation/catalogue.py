"""The coordinator's foundations: the ones a round may name, by id.

    <paths.data>/foundations/<id>/   added with `coordinator foundation add FOLDER`
    the shipped foundation           (shared.foundation.shipped), always there under its own id

Adding checks every file against the card and copies the folder in whole (staged, then renamed), so
a round never sends half a foundation. An id stays bound to the hash it was added with: adding a
different foundation under a taken id is refused, since sites cache by hash and rounds name both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coordinator.config import CoordinatorSettings
from coordinator.federation.errors import FederationError
from shared.foundation.shipped import SHIPPED_FOUNDATION
from shared.hashing import file_sha256
from shared.schemas import FoundationCard

# shared.foundation.artefact is imported only to add a foundation: it brings torch and MONAI, which
# the service and the round launcher otherwise never load.


@dataclass(frozen=True)
class ListedFoundation:
    foundation_id: str
    sha256: str
    folder: Path
    card: FoundationCard
    shipped: bool


def foundations_folder(settings: CoordinatorSettings) -> Path:
    return settings.paths.data / "foundations"


def list_foundations(settings: CoordinatorSettings) -> dict[str, ListedFoundation]:
    """Every foundation a round may name, by id (the shipped one first; an added one of the same id
    cannot exist, see `add_foundation`). A foundation's sha256 is its card's."""
    folders = [SHIPPED_FOUNDATION]
    root = foundations_folder(settings)
    if root.is_dir():
        folders += sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    listed: dict[str, ListedFoundation] = {}
    for folder in folders:
        path = folder / FoundationCard.FILE_NAME
        card = FoundationCard.read(path)
        listed.setdefault(
            card.foundation_id,
            ListedFoundation(
                card.foundation_id, file_sha256(path), folder, card, folder == SHIPPED_FOUNDATION
            ),
        )
    return listed


def find_foundation(settings: CoordinatorSettings, foundation_id: str) -> ListedFoundation:
    listed = list_foundations(settings)
    if foundation_id not in listed:
        raise FederationError(
            f"no foundation {foundation_id!r} at this coordinator (it has {', '.join(sorted(listed))}); "
            "add one with `coordinator foundation add FOLDER`"
        )
    return listed[foundation_id]


def add_foundation(settings: CoordinatorSettings, source: Path) -> ListedFoundation:
    """Copy the foundation in `source`, checked, into the coordinator's foundations under its id.
    Adding the same foundation again changes nothing."""
    from shared.foundation.artefact import load_foundation
    from shared.foundation.files import foundation_files, foundation_sha256, install_foundation

    foundation = load_foundation(source)  # every file against the card: FoundationError if not
    foundation_id, sha256 = foundation.card.foundation_id, foundation_sha256(source)
    known = list_foundations(settings).get(foundation_id)
    if known is not None:
        if known.sha256 != sha256:
            raise FederationError(
                f"the foundation id {foundation_id!r} is taken by another foundation "
                f"({known.sha256[:12]}, not {sha256[:12]}); give the new one its own id"
            )
        return known
    install_foundation(foundation_files(source), foundations_folder(settings) / foundation_id, sha256=sha256)
    return list_foundations(settings)[foundation_id]
