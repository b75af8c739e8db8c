"""`coordinator doctor`: what an operator checks before opening a federation, and when something is
wrong: settings, certificates and keys, the SuperLink, the database and its schema, the object
store, the site registry, free disk and the clock. It reads and changes nothing (it never creates
or upgrades a database: `coordinator serve` does that at start)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from coordinator.config import CoordinatorSettings, load_coordinator_settings
from coordinator.federation.certificates import CertificateFiles
from coordinator.federation.flower_cli import client_address
from shared.doctor_checks import Check, certificate, clock, free_disk, owner_only, tls_endpoint
from shared.errors import FedsynthError


def _settings(config: Path | None) -> tuple[CoordinatorSettings | None, Check]:
    try:
        settings = load_coordinator_settings(config)
    except FedsynthError as exc:
        return None, Check("settings", "fail", str(exc), "fix the field it names (`coordinator config`)")
    return settings, Check("settings", "pass", "coordinator.toml loads")


def _tls(settings: CoordinatorSettings) -> list[Check]:
    if settings.federation.insecure:
        return [
            Check(
                "TLS",
                "warn",
                "[federation] insecure = true: no TLS, no site authentication",
                "never with real sites",
            )
        ]
    files = CertificateFiles(settings.paths.certificates)
    if missing := files.missing():
        names = ", ".join(str(p) for p in missing)
        return [Check("certificates", "fail", f"missing: {names}", "`coordinator certs init --host NAME`")]
    new_ca = "a new CA: `coordinator certs init --force`, then give every site the new ca.pem"
    renew = "`coordinator certs renew --host NAME`, then restart the SuperLink (sites need nothing new)"
    checks = certificate("coordinator CA", files.ca_certificate, new_ca)
    checks += certificate("SuperLink certificate", files.superlink_certificate, renew)
    checks += [owner_only("SuperLink key", files.superlink_key)]
    if files.ca_key.is_file():
        checks.append(owner_only("CA key", files.ca_key))
    return checks


def _superlink(settings: CoordinatorSettings) -> Check:
    address = client_address(settings)
    if settings.federation.insecure:
        return Check("SuperLink", "warn", f"{address}: not checked (insecure mode)")
    return tls_endpoint("SuperLink", address, CertificateFiles(settings.paths.certificates).ca_certificate)


def _database(settings: CoordinatorSettings) -> Check:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import SQLAlchemyError

    from coordinator.service.database import alembic_config, database_url, make_engine

    url = database_url(settings)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return Check("database", "pass", "none yet: `coordinator serve` creates it at start")
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return Check("database", "fail", f"cannot connect: {reason}", "check [database] url and the server")
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    if current != head:
        return Check(
            "database",
            "warn",
            f"{where}: schema {current}, this version needs {head}",
            "back it up; `coordinator serve` upgrades it at start",
        )
    return Check("database", "pass", f"{where}: schema current ({head})")


def _object_store(settings: CoordinatorSettings) -> tuple[Check, Path | None]:
    """The store's check, and its folder when it is one (for the free disk check)."""
    from coordinator.service.object_store import ObjectStore, StorageError

    try:
        store = ObjectStore.open(settings)
    except StorageError as exc:
        return Check("object store", "fail", str(exc), "check [storage] url"), None
    if not store.is_local:
        try:
            store.fs.ls(store.root)
        except (OSError, ValueError) as exc:
            unlisted = f"{store.url}: cannot list ({exc})"
            return Check("object store", "fail", unlisted, "check the bucket and credentials"), None
        return Check("object store", "pass", f"{store.url} answers"), None
    root = Path(store.root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
            pass
    except OSError as exc:
        refused = f"cannot write in {root} ({exc.strerror})"
        return Check("object store", "fail", refused, "fix its ownership"), None
    return Check("object store", "pass", f"{root} is writable"), root


def _sites(settings: CoordinatorSettings) -> Check:
    from coordinator.federation.errors import FederationError
    from coordinator.federation.sites import list_sites

    try:
        sites = list_sites(settings)
    except FederationError as exc:
        return Check("site registry", "fail", str(exc), "restore data/sites.json from a backup")
    keys = settings.paths.certificates / "sites"
    lost = sorted(s for s in sites if not (keys / f"{s}.pub").is_file())
    if lost:
        return Check(
            "site registry",
            "warn",
            f"{len(sites)} registered; no public key kept for {', '.join(lost)}",
            "register them again with their .pub",
        )
    return Check("site registry", "pass", f"{len(sites)} site(s) registered, each key kept")


def run_checks(config: Path | None) -> list[Check]:
    settings, loaded = _settings(config)
    if settings is None:
        return [loaded]
    paths = settings.paths
    store, store_folder = _object_store(settings)
    checks = [loaded, *_tls(settings), _superlink(settings), _database(settings), store, _sites(settings)]
    folders = [paths.data, paths.logs, *([store_folder] if store_folder else [])]
    return [*checks, *free_disk(folders), clock()]
