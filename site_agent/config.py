"""The site agent's settings: one `site.toml` per hospital, overridable by `FEDSYNTH_` variables.

`site-agent init DIR --site-id ID` writes a commented file rendered from these models (each field's
description is its comment; see `site_agent.site_toml`); every other command loads it through
`load_site_settings`. Relative paths are relative to the file's folder.
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
    store: Path = Field(
        Path("store"),
        description="Preprocessed real cases. Patient data: keep on encrypted storage, never share.",
    )
    incoming: Path = Field(
        Path("incoming"),
        description="Where the DICOM receiver (`site-agent receive`) writes incoming instances.",
    )
    exports: Path = Field(
        Path("exports"), description="A copy of exactly what left this site, for your own audit."
    )
    ledger: Path = Field(
        Path("privacy/ledger.jsonl"),
        description="The privacy ledger: every release and its privacy cost. Back it up; never edit it.",
    )
    models: Path = Field(
        Path("models"), description="Generator checkpoints (trained on patient data: they stay here)."
    )
    foundations: Path = Field(
        Path("foundations"),
        description="Public foundation models the coordinator sent, by sha256 (public weights, no "
        "patient data; safe to delete: they are sent again).",
    )
    logs: Path = Field(
        Path("logs"),
        description="Log files. No patient name, identifier, UID or path is ever written to them.",
    )


class SitePrivacy(SettingsSection):
    epsilon_cap: float = Field(
        10.0,
        gt=0,
        description="Total privacy budget (epsilon) this site will ever spend across all rounds. "
        "Requests that would go over it are refused before any training starts.",
    )
    delta: float = Field(
        1e-5,
        gt=0,
        le=1e-5,
        description="Largest delta per release (probability that the epsilon guarantee fails). At most 1e-5.",
    )
    accountant: Literal["rdp", "prv"] = Field(
        "rdp",
        description='Privacy accountant: "rdp" (Renyi DP) or "prv" (privacy random variables, tighter).',
    )
    allow_non_private_export: bool = Field(
        False,
        description="Allow exporting from non-private (epsilon = infinity) training. Only for phantom "
        "benchmarks.",
    )


class SitePreprocessing(SettingsSection):
    box: tuple[int, int, int] = Field(
        GPU_BOX,
        description="Cases are cropped to a box of `box` voxels (x right-left, y front-back, z foot-head) "
        "at `spacing_mm`, centred on the mediastinum; it must hold thoracic inlet to diaphragm (about "
        "250 mm). Each edge is a multiple of 8. CPU-only sites: box = [48, 48, 64] with spacing_mm = 4.0.",
    )
    spacing_mm: float = Field(GPU_SPACING_MM, gt=0, le=10, description="The voxel size of the box, in mm.")
    window_hu: tuple[float, float] = Field(
        (-160.0, 240.0), description="Hounsfield window scaled to [-1, 1]."
    )
    holdout_fraction: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Fraction of labelled cases kept aside as real held-out data for evaluating models here.",
    )

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
    min_slices: int = Field(20, ge=2, description="Series with fewer slices than this are not used.")
    avoid_kernels: tuple[str, ...] = Field(
        ("LUNG", "BONE", "SHARP", "^B[5-9]", "^FC5", "^L$", "^Y[A-D]"),
        description="Kernels to use only when a study has no other series (regular expressions, any "
        "case): lung and bone kernels sharpen noise and edges.",
    )


class SiteReceive(SettingsSection):
    """The DICOM receiver (`site-agent receive`): route studies here from PACS."""

    ae_title: str = Field("FEDSYNTH", pattern=r"^[ -~]{1,16}$")
    port: int = Field(11112, ge=1, le=65535)
    host: str = Field(
        "127.0.0.1",
        description="Listen address. 127.0.0.1 accepts only this machine; use the host's address for PACS.",
    )
    idle_seconds: float = Field(
        30.0,
        gt=0,
        description="A series that received nothing for this many seconds is complete: it is ingested.",
    )


class SiteGenerator(SettingsSection):
    """The synthetic-data generator, trained here with DP-SGD (`site-agent train`)."""

    backend: Literal["dpgan3d", "ldm3d", "lesionstats"] = Field(
        "lesionstats",
        description='"lesionstats" (the default): a public foundation draws the anatomy and one DP '
        'release of each class\'s lesion statistics places the lesions; "ldm3d": the foundation '
        'fine-tuned here with DP-SGD; "dpgan3d": a 3D GAN trained from scratch (its volumes are '
        "texture, not anatomy). Both foundation backends use the round's foundation, which the "
        "coordinator sends, or `foundation` when the round names none.",
    )
    foundation: Path | None = Field(
        None,
        description="Folder of a public foundation (`coordinator foundation train`) for lesionstats and "
        "ldm3d when a round names none (or for `site-agent train`); public weights cost no privacy "
        "budget.",
    )
    foundation_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="Pin: the only foundation (its card's sha256) this site accepts, from `foundation` or "
        "from a round; any other is refused.",
    )
    trainable: Literal["classes", "conditioning", "all"] = Field(
        "conditioning",
        description="ldm3d: what the DP fine-tune trains: the class embeddings, those and each block's "
        "embedding projection (the default), or every weight.",
    )
    draws_per_patient: int = Field(
        4, ge=1, le=64, description="ldm3d: noise draws averaged inside each patient's loss per step."
    )
    sampling_steps: int = Field(
        50, ge=2, le=1000, description="lesionstats and ldm3d: denoising steps per drawn box (DDIM)."
    )
    epochs: float = Field(
        30.0,
        gt=0,
        le=10_000,
        description="Expected passes over the training patients; more steps cost more epsilon for the "
        "same noise.",
    )
    batch_size: int = Field(
        8,
        ge=1,
        le=4096,
        description="Expected number of real patients per step (each is drawn independently: Poisson "
        "sampling).",
    )
    latent_dim: int = Field(64, ge=4, le=1024)
    width: int = Field(
        16, ge=2, le=256, description="Network width: 16 or more on a GPU; 4 to 8 for CPU-only demos."
    )
    learning_rate: float = Field(2e-4, gt=0, le=1)
    max_grad_norm: float = Field(
        1.0, gt=0, description="Each patient's gradient is clipped to this norm before noise is added."
    )
    grad_sample_mode: Literal["hooks", "functorch"] = Field(
        "functorch",  # leaner and faster: bench/generator.py
        description='How Opacus computes per-patient gradients: "hooks" or "functorch" (see '
        "bench/generator.py).",
    )
    checkpoint_seconds: float = Field(
        60.0,
        ge=0,
        description="Seconds between training checkpoints (a crashed run resumes from the last one; "
        "0: every step).",
    )


class SiteAudit(SettingsSection):
    """Memorisation audit before any export: a sample is "close" when it sits nearer to a training
    case than the `quantile` of fresh held-out patients do (site_agent/synthetic/audit.py). More
    close samples than `max_close_fraction`, and more than chance explains with this many held-out
    patients, blocks the export for your review."""

    quantile: float = Field(0.05, gt=0, lt=1)
    max_close_fraction: float = Field(0.2, ge=0, le=1)


class SiteFederation(SettingsSection):
    superlink: str = Field(
        "",
        description="The coordinator's SuperLink (HOST:PORT), as the coordinator operator tells you. "
        "`site-agent join` connects to it; nothing connects to this site. Empty: not joined.",
    )
    ca_certificate: Path = Field(
        Path("certs/coordinator-ca.pem"),
        description="The coordinator's CA certificate (from the operator): the SuperLink must present "
        "a certificate it signed.",
    )
    private_key: Path = Field(
        Path("certs/site.key"),
        description="This site's private key, made by `site-agent init` (or `site-agent keygen`). It "
        "never leaves the site; send the operator the `.pub` file beside it.",
    )
    runtime_port: int = Field(
        9094,
        ge=1,
        le=65535,
        description="Local port of the SuperNode's app runtime (loopback only). Change it when two "
        "agents share a host.",
    )
    max_per_class: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Largest number of synthetic samples per class this site will produce for one "
        "round; larger requests are refused.",
    )
    egress_log: Path = Field(
        Path("logs/egress"),
        description="Every message this site sends is also written here, byte for byte, for your audit.",
    )
    home: Path = Field(Path("flower"), description="The SuperNode's own working folder.")


class SiteCompute(SettingsSection):
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description='"auto" uses a CUDA GPU when present, else the CPU; or "cpu", "cuda", "cuda:1".',
    )
    answers_at_once: int = Field(
        0,
        ge=0,
        le=1000,
        description="On a machine that runs several site agents: at most this many of their round "
        "answers that train or score run at once (each loads torch, about 450 MB); the others wait "
        "their turn. Agents share the limit through lock files in the system's temporary folder. "
        "0: no limit (one agent per machine).",
    )


class SiteSettings(FileSettings):
    # The same rule as every identifier that crosses to the coordinator.
    site_id: Identifier = Field(
        description="The name the coordinator knows this site by. Letters, digits, '.', '_' and '-'."
    )
    classes: tuple[str, ...] = Field(
        DEFAULT_CLASSES,
        description="The diagnostic classes, in model output order. Change only together with the "
        "coordinator.",
    )
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
