"""The coordinator's settings: one `coordinator.toml`, overridable by `FEDSYNTH_` variables.

Each field's description is its comment in the file `coordinator init` writes (`coordinator_toml`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.classes import DEFAULT_CLASSES
from shared.settings import FileSettings, SettingsSection, load_settings, resolve_config_path

CONFIG_ENV_VAR = "FEDSYNTH_COORDINATOR_CONFIG"
CONFIG_FILE_NAME = "coordinator.toml"


class CoordinatorPaths(SettingsSection):
    data: Path = Field(Path("data"), description="Pooled synthetic sets, trained models and round reports.")
    certificates: Path = Field(
        Path("certs"), description="Certificate authority, SuperLink certificate and the sites' public keys."
    )
    logs: Path = Path("logs")


class CoordinatorApi(SettingsSection):
    host: str = Field(
        "127.0.0.1",
        description="Address of the web API and dashboard. Keep 127.0.0.1 behind a reverse proxy.",
    )
    port: int = Field(8000, ge=1, le=65535)


class CoordinatorDatabase(SettingsSection):
    url: str = Field(
        "",
        description="Empty: SQLite inside the data folder. Or a SQLAlchemy URL such as "
        '"postgresql+psycopg://fedsynth@db.example.org/fedsynth".',
    )


class CoordinatorStorage(SettingsSection):
    url: str = Field(
        "",
        description="Where published pooled sets and models are kept and served from. Empty: the "
        'folder data/store. Or an fsspec URL such as "s3://bucket/fedsynth" (install fedsynth[s3]); '
        "credentials come from the usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables, never "
        "from this file.",
    )
    endpoint_url: str = Field(
        "",
        description='An S3-compatible endpoint (MinIO, Ceph RGW), e.g. "https://s3.example.org". Empty: AWS.',
    )
    accel_redirect: str = Field(
        "",
        description="With nginx in front (deploy/nginx/coordinator.conf): the URL prefix of its internal "
        'location that serves this store\'s folder, e.g. "/_store". Downloads are then checked by the '
        "coordinator (token, role, published) and sent by nginx (X-Accel-Redirect), at nginx's speed. "
        "Empty: the coordinator sends them itself. A folder store only.",
    )


class CoordinatorFederation(SettingsSection):
    superlink_host: str = Field(
        "127.0.0.1", description="Where the Flower SuperLink listens for site agents."
    )
    superlink_port: int = Field(9092, ge=1, le=65535)
    insecure: bool = Field(
        False,
        description="true: no TLS and no site authentication. Local development only, never with real sites.",
    )
    min_sites: int = Field(
        2, ge=1, description="A round goes on with the sites that answered as long as at least this many did."
    )
    round_timeout_s: float = Field(
        3600.0,
        gt=0,
        description="No round waits longer than this for synthetic sets (seconds); slower sites are "
        "named as missing.",
    )
    evaluate_timeout_s: float = Field(
        900.0, gt=0, description="Nor longer than this for the sites' metrics on the shared model."
    )
    diagnosis_epochs: int = Field(
        60,
        ge=1,
        le=10_000,
        description="Training of the shared diagnostic model on each pooled set: most epochs, and "
        "early stopping's patience below.",
    )
    diagnosis_patience: int = Field(12, ge=1)


class CoordinatorSettings(FileSettings):
    classes: tuple[str, ...] = Field(
        DEFAULT_CLASSES,
        description="The diagnostic classes, in model output order. Every site must use the same list.",
    )
    paths: CoordinatorPaths = CoordinatorPaths()
    api: CoordinatorApi = CoordinatorApi()
    database: CoordinatorDatabase = CoordinatorDatabase()
    storage: CoordinatorStorage = CoordinatorStorage()
    federation: CoordinatorFederation = CoordinatorFederation()


def load_coordinator_settings(config: Path | None = None) -> CoordinatorSettings:
    path = resolve_config_path(config, env_var=CONFIG_ENV_VAR, default_name=CONFIG_FILE_NAME)
    return load_settings(
        CoordinatorSettings,
        path,
        hint=f"create one with `coordinator init DIR`, or pass --config PATH or set {CONFIG_ENV_VAR}",
    )
