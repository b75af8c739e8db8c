"""The site agent's settings: one `site.toml` per hospital, overridable by `FEDSYNTH_` variables.

`site-agent init DIR --site-id ID` writes a commented file (see `site_agent.site_toml`); every other
command loads it through `load_site_settings`. Relative paths are relative to the file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from shared.classes import DEFAULT_CLASSES, LabelSet
from shared.crop_box import GPU_BOX, GPU_SPACING_MM, check_box
from shared.schemas.common import Identifier
from shared.settings import FileSettings, SettingsSection, load_settings, resolve_config_path

CONFIG_ENV_VAR = "FEDSYNTH_SITE_CONFIG"
CONFIG_FILE_NAME = "site.toml"


class SitePaths(SettingsSection):
    store: Path = Field(Path("store"), description="preprocessed real cases; never leaves the site")
    incoming: Path = Field(Path("incoming"), description="where the DICOM receiver writes instances")
    exports: Path = Field(Path("exports"), description="local copy of exactly what left the site")
    ledger: Path = Field(Path("privacy/ledger.jsonl"), description="the privacy ledger")
    models: Path = Field(Path("models"), description="generator checkpoints")
    logs: Path = Field(Path("logs"), description="log files (no patient data is ever logged)")


class SitePrivacy(SettingsSection):
    epsilon_cap: float = Field(10.0, gt=0, description="total epsilon this site will ever spend")
    delta: float = Field(1e-5, gt=0, le=1e-5, description="largest delta per release")
    accountant: Literal["rdp", "prv"] = "rdp"
    allow_non_private_export: bool = Field(False, description="only for benchmarking on phantom data")


class SitePreprocessing(SettingsSection):
    box: tuple[int, int, int] = Field(
        GPU_BOX, description="the box cropped around the mediastinum, x y z voxels (RAS), multiples of 8"
    )
    spacing_mm: float = Field(GPU_SPACING_MM, gt=0, le=10)
    window_hu: tuple[float, float] = (-160.0, 240.0)
    holdout_fraction: float = Field(0.2, ge=0, lt=1, description="real cases kept for evaluation only")

    @field_validator("box")
    @classmethod
    def _box_fits_the_networks(cls, box: tuple[int, int, int]) -> tuple[int, int, int]:
        return check_box(box)

    @model_validator(mode="after")
    def _window_ordered(self) -> SitePreprocessing:
        if self.window_hu[0] >= self.window_hu[1]:
            raise ValueError("window_hu must be [low, high] with low < high")
        return self


class SiteIngest(SettingsSection):
    min_slices: int = Field(20, ge=2, description="fewer slices than this is not a chest CT series")
    # Series with a kernel matching one of these (regular expressions, any case) are used only when
    # a study has no other: lung and bone kernels sharpen noise and edges.
    avoid_kernels: tuple[str, ...] = ("LUNG", "BONE", "SHARP", "^B[5-9]", "^FC5", "^L$", "^Y[A-D]")


class SiteReceive(SettingsSection):
    ae_title: str = Field("FEDSYNTH", pattern=r"^[ -~]{1,16}$")
    port: int = Field(11112, ge=1, le=65535)
    host: str = "127.0.0.1"
    idle_seconds: float = Field(30.0, gt=0, description="a series quiet this long is complete: ingest it")


class SiteGenerator(SettingsSection):
    backend: Literal["dpgan3d"] = "dpgan3d"
    epochs: float = Field(30.0, gt=0, le=10_000, description="expected passes over the training patients")
    batch_size: int = Field(8, ge=1, le=4096, description="expected real patients per step")
    latent_dim: int = Field(64, ge=4, le=1024)
    width: int = Field(16, ge=2, le=256, description="channels at full resolution; 4-8 for CPU demos")
    learning_rate: float = Field(2e-4, gt=0, le=1)
    max_grad_norm: float = Field(1.0, gt=0, description="per-patient gradient clipping norm")
    grad_sample_mode: Literal["hooks", "functorch"] = "functorch"  # leaner and faster: bench/generator.py
    checkpoint_seconds: float = Field(
        60.0, ge=0, description="how often training state is saved (0: every step)"
    )


class SiteAudit(SettingsSection):
    # A sample is "close" when it sits nearer a training case than this quantile of fresh
    # (held-out) patients do; see site_agent/synthetic/audit.py.
    quantile: float = Field(0.05, gt=0, lt=1)
    max_close_fraction: float = Field(
        0.2, ge=0, le=1, description="more close samples than this blocks export"
    )


class SiteFederation(SettingsSection):
    superlink: str = Field("", description="HOST:PORT of the coordinator's SuperLink; empty: not joined")
    ca_certificate: Path = Field(Path("certs/coordinator-ca.pem"), description="the coordinator's CA")
    private_key: Path = Field(Path("certs/site.key"), description="this site's key; never leaves the site")
    runtime_port: int = Field(9094, ge=1, le=65535, description="the SuperNode's local app port")
    max_per_class: int = Field(100, ge=1, le=10_000, description="larger requests are refused")
    egress_log: Path = Field(Path("logs/egress"), description="a copy of every message this site sends")
    home: Path = Field(Path("flower"), description="the SuperNode's working folder")


class SiteCompute(SettingsSection):
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")


class SiteSettings(FileSettings):
    site_id: Identifier  # the same rule as every identifier that crosses to the coordinator
    classes: tuple[str, ...] = DEFAULT_CLASSES
    paths: SitePaths = SitePaths()
    privacy: SitePrivacy = SitePrivacy()
    preprocessing: SitePreprocessing = SitePreprocessing()
    ingest: SiteIngest = SiteIngest()
    receive: SiteReceive = SiteReceive()
    generator: SiteGenerator = SiteGenerator()
    audit: SiteAudit = SiteAudit()
    federation: SiteFederation = SiteFederation()
    compute: SiteCompute = SiteCompute()

    @model_validator(mode="after")
    def _valid_classes(self) -> SiteSettings:
        LabelSet(self.classes)
        return self


def load_site_settings(config: Path | None = None) -> SiteSettings:
    path = resolve_config_path(config, env_var=CONFIG_ENV_VAR, default_name=CONFIG_FILE_NAME)
    return load_settings(
        SiteSettings,
        path,
        hint="create one with `site-agent init DIR --site-id ID`, or pass --config PATH "
        f"or set {CONFIG_ENV_VAR}",
    )
