"""The coordinator's settings: one `coordinator.toml`, overridable by `FEDSYNTH_` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.classes import DEFAULT_CLASSES
from shared.settings import FileSettings, SettingsSection, load_settings, resolve_config_path

CONFIG_ENV_VAR = "FEDSYNTH_COORDINATOR_CONFIG"
CONFIG_FILE_NAME = "coordinator.toml"


class CoordinatorPaths(SettingsSection):
    data: Path = Field(Path("data"), description="pooled sets, models and reports (local object store)")
    certificates: Path = Field(Path("certs"), description="CA, SuperLink certificate and site public keys")
    logs: Path = Path("logs")


class CoordinatorApi(SettingsSection):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)


class CoordinatorDatabase(SettingsSection):
    # Empty means SQLite in the data folder; any SQLAlchemy URL (PostgreSQL) is accepted.
    url: str = ""


class CoordinatorStorage(SettingsSection):
    # Empty means a folder `store` inside the data folder; otherwise an fsspec URL such as
    # "s3://bucket/fedsynth". Credentials come from the environment (AWS_ACCESS_KEY_ID, ...), never
    # from this file.
    url: str = ""
    endpoint_url: str = Field("", description="S3-compatible endpoint (MinIO, Ceph); empty: AWS")


class CoordinatorFederation(SettingsSection):
    superlink_host: str = "127.0.0.1"
    superlink_port: int = Field(9092, ge=1, le=65535)
    insecure: bool = Field(False, description="no TLS, no site authentication: local development only")
    min_sites: int = Field(2, ge=1)
    round_timeout_s: float = Field(3600.0, gt=0, description="longest wait for synthetic sets")
    evaluate_timeout_s: float = Field(900.0, gt=0, description="longest wait for site metrics")
    diagnosis_epochs: int = Field(60, ge=1, le=10_000)
    diagnosis_patience: int = Field(12, ge=1)


class CoordinatorSettings(FileSettings):
    classes: tuple[str, ...] = DEFAULT_CLASSES
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
