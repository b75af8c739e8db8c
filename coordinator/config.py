"""The coordinator's settings: one `coordinator.toml`, overridable by `FEDSYNTH_` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from shared.classes import DEFAULT_CLASSES
from shared.errors import FedsynthError
from shared.settings import FileSettings, load_settings, resolve_config_path

CONFIG_ENV_VAR = "FEDSYNTH_COORDINATOR_CONFIG"
CONFIG_FILE_NAME = "coordinator.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CoordinatorPaths(_Section):
    data: Path = Field(Path("data"), description="pooled sets, models and reports (local object store)")
    certificates: Path = Field(Path("certs"), description="CA, SuperLink certificate and site public keys")
    logs: Path = Path("logs")


class CoordinatorApi(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)


class CoordinatorDatabase(_Section):
    # Empty means SQLite in the data folder; any SQLAlchemy URL (PostgreSQL) is accepted.
    url: str = ""


class CoordinatorFederation(_Section):
    superlink_host: str = "127.0.0.1"
    superlink_port: int = Field(9092, ge=1, le=65535)
    min_sites: int = Field(2, ge=1)
    round_timeout_s: float = Field(3600.0, gt=0)


class CoordinatorSettings(FileSettings):
    classes: tuple[str, ...] = DEFAULT_CLASSES
    paths: CoordinatorPaths = CoordinatorPaths()
    api: CoordinatorApi = CoordinatorApi()
    database: CoordinatorDatabase = CoordinatorDatabase()
    federation: CoordinatorFederation = CoordinatorFederation()


TEMPLATE = """\
# fedsynth coordinator settings. Written by `coordinator init`.
# Relative paths are relative to this file's folder. Any setting can be overridden by an
# environment variable FEDSYNTH_<SECTION>__<NAME>, for example FEDSYNTH_API__PORT=8080.

# The diagnostic classes, in model output order. Every site must use the same list.
classes = [{classes}]

[paths]
# Pooled synthetic sets, trained models and round reports.
data = "data"
# Certificate authority, SuperLink certificate and the sites' public keys.
certificates = "certs"
logs = "logs"

[api]
# Address of the web API and dashboard. Keep 127.0.0.1 behind a reverse proxy.
host = "127.0.0.1"
port = 8000

[database]
# Empty: SQLite inside the data folder. Or a SQLAlchemy URL such as
# "postgresql+psycopg://fedsynth@db.example.org/fedsynth".
url = ""

[federation]
# Where the Flower SuperLink listens for site agents.
superlink_host = "127.0.0.1"
superlink_port = 9092
# A round goes on with the sites that answered as long as at least this many did.
min_sites = 2
# No round waits longer than this for site answers (seconds).
round_timeout_s = 3600.0
"""


class CoordinatorExistsError(FedsynthError):
    """`init` would overwrite an existing coordinator.toml."""


def write_coordinator_toml(directory: Path, *, force: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / CONFIG_FILE_NAME
    if target.exists() and not force:
        raise CoordinatorExistsError(f"{target} already exists; pass --force to overwrite it")
    text = TEMPLATE.format(classes=", ".join(f'"{name}"' for name in DEFAULT_CLASSES))
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    paths = CoordinatorPaths()
    for folder in (paths.data, paths.certificates, paths.logs):
        (directory / folder).mkdir(parents=True, exist_ok=True)
    return target


def load_coordinator_settings(config: Path | None = None) -> CoordinatorSettings:
    path = resolve_config_path(config, env_var=CONFIG_ENV_VAR, default_name=CONFIG_FILE_NAME)
    return load_settings(
        CoordinatorSettings,
        path,
        hint=f"create one with `coordinator init DIR`, or pass --config PATH or set {CONFIG_ENV_VAR}",
    )
