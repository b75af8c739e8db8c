"""The coordinator's register of sites: who each authenticated SuperNode is.

`coordinator sites add ID --public-key FILE` registers the site's public key with the SuperLink
(which then admits only SuperNodes holding the matching private key) and records which Flower node
id belongs to which site. A round trusts this mapping, never a name a site gives itself.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from coordinator.config import CoordinatorSettings
from coordinator.federation.errors import FederationError
from coordinator.federation.flower_cli import flwr
from shared.schemas.common import Identifier

_SITE_ID = TypeAdapter(Identifier)


@dataclass(frozen=True)
class Site:
    site_id: str
    node_id: int
    fingerprint: str  # sha256 of the public key line
    added_at: str


def registry_path(settings: CoordinatorSettings) -> Path:
    return settings.paths.data / "sites.json"


def list_sites(settings: CoordinatorSettings) -> dict[str, Site]:
    path = registry_path(settings)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {site_id: Site(**entry) for site_id, entry in data.items()}
    except (ValueError, TypeError) as exc:
        raise FederationError(f"{path} is damaged ({exc}); restore it from a backup") from None


def _save(settings: CoordinatorSettings, sites: dict[str, Site]) -> None:
    path = registry_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({k: asdict(v) for k, v in sorted(sites.items())}, indent=2) + "\n")
    tmp.replace(path)


def add_site(settings: CoordinatorSettings, site_id: str, public_key: Path) -> Site:
    try:
        _SITE_ID.validate_python(site_id)
    except ValidationError:
        raise FederationError(
            f"site id {site_id!r}: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        ) from None
    if not public_key.is_file():
        raise FederationError(f"--public-key {public_key}: no such file")
    sites = list_sites(settings)
    if site_id in sites:
        raise FederationError(f"site {site_id!r} is already registered (node {sites[site_id].node_id})")
    fingerprint = hashlib.sha256(public_key.read_bytes().strip()).hexdigest()
    if any(s.fingerprint == fingerprint for s in sites.values()):
        raise FederationError(f"{public_key} is already registered for another site")
    answer = flwr(settings, "supernode", "register", str(public_key), "--name", site_id)
    keys = settings.paths.certificates / "sites"
    keys.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(public_key, keys / f"{site_id}.pub")
    site = Site(site_id, int(answer["node-id"]), fingerprint, datetime.now(UTC).isoformat(timespec="seconds"))
    _save(settings, {**sites, site_id: site})
    return site


def remove_site(settings: CoordinatorSettings, site_id: str) -> Site:
    """Unregister a site's key from the SuperLink (it can no longer connect) and from the registry.
    Its public key is kept as certs/sites/<id>.pub.removed-<time>, a record of who it was."""
    sites = list_sites(settings)
    if site_id not in sites:
        raise FederationError(f"site {site_id!r} is not registered (`coordinator sites list`)")
    site = sites.pop(site_id)
    flwr(settings, "supernode", "unregister", str(site.node_id))
    _save(settings, sites)
    key = settings.paths.certificates / "sites" / f"{site_id}.pub"
    if key.exists():
        key.replace(key.with_name(f"{key.name}.removed-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"))
    return site


def online_node_ids(settings: CoordinatorSettings) -> set[int]:
    """Node ids the SuperLink currently counts as connected."""
    answer = flwr(settings, "supernode", "list")
    return {int(node["node-id"]) for node in answer.get("nodes", []) if node.get("status") == "online"}
