"""The public foundations a site has received from the coordinator, one folder per sha256.

    <paths.foundations>/<sha256>/   a whole foundation, checked file by file against its card

A round that names a foundation (`RoundRequest.foundation_id` and `foundation_sha256`) trains from
the cached copy, never from whatever the site's settings point at; the coordinator sends the files
(`query.foundation`) only to a site that does not hold them yet. Public weights cost no privacy
budget, and a foundation's folder holds nothing private, so it may be deleted at any time: the
coordinator sends it again next round.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from shared.foundation.files import FoundationError, foundation_sha256, install_foundation
from shared.schemas import RoundRequest
from site_agent.config import SiteSettings
from site_agent.errors import SiteRefusal


class ForeignFoundation(SiteRefusal):
    """The round names a foundation this site's settings do not accept."""

    reason = "invalid_request"
    public_detail = "the round's foundation is not the one this site accepts"


def accepted(settings: SiteSettings, request: RoundRequest) -> None:
    """A site that pins a foundation (`[generator] foundation_sha256`) takes no other one."""
    pinned = settings.generator.foundation_sha256
    if pinned is not None and request.foundation_sha256 != pinned:
        raise ForeignFoundation(
            f"the round's foundation {request.foundation_id} ({str(request.foundation_sha256)[:12]}) is "
            f"not the one this site accepts ({pinned[:12]}, its [generator] foundation_sha256)"
        )


def cached_foundation(settings: SiteSettings, sha256: str) -> Path | None:
    """The cached folder of the foundation whose card has `sha256`, if this site holds it (its
    weights are checked against the card again when a generator loads them)."""
    folder = settings.paths.foundations / sha256
    try:
        return folder if foundation_sha256(folder) == sha256 else None
    except FoundationError:
        return None


def receive_foundation(settings: SiteSettings, request: RoundRequest, files: dict[str, bytes]) -> Path:
    """Cache the foundation the coordinator sent for `request` (one this site accepts), refusing it
    (FoundationError) unless its files are exactly the foundation the round names."""
    assert request.foundation_sha256 is not None
    folder = settings.paths.foundations / request.foundation_sha256
    if folder.exists() and cached_foundation(settings, request.foundation_sha256) is None:
        shutil.rmtree(folder)  # not the foundation its name says (edited by hand?): a cache, so replace it
    install_foundation(files, folder, sha256=request.foundation_sha256)
    return folder


def with_round_foundation(settings: SiteSettings, request: RoundRequest) -> SiteSettings:
    """The settings a round trains under: those of the site, with the round's foundation (from
    the cache) in place of the site's own when the round names one."""
    if request.foundation_sha256 is None:
        return settings
    accepted(settings, request)
    folder = cached_foundation(settings, request.foundation_sha256)
    if folder is None:
        raise FoundationError(f"this site does not hold the round's foundation {request.foundation_id}")
    generator = settings.generator.model_copy(
        update={"foundation": folder, "foundation_sha256": request.foundation_sha256}
    )
    return settings.model_copy(update={"generator": generator})
