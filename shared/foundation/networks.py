"""The foundation model's two networks and the shape they are built to.

A 3D autoencoder (MONAI `AutoencoderKL`) takes a box's image and lesion mask together, two channels
in [-1, 1], to a latent a quarter of the box's size on each edge; a denoiser (MONAI
`DiffusionModelUNet`) learns to undo noise on those latents, conditioned on a class embedding. The
embedding table has one row per class plus one more, `public`, that the foundation trains: public
CT has no class, and a hospital's DP fine-tune learns the class rows from its own patients, starting
from the public row. Both sides build the networks from the spec in the foundation's card, so
weights never carry code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from monai.networks.nets import AutoencoderKL, DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from shared.classes import DEFAULT_CLASSES
from shared.crop_box import Box, check_box

LATENT_DOWNSAMPLING = 4  # two halvings in the autoencoder


@dataclass(frozen=True)
class FoundationSpec:
    """Everything that fixes the networks' shapes and the data they read; saved in the card."""

    box: Box
    spacing_mm: float
    window_hu: tuple[float, float] = (-160.0, 240.0)
    classes: tuple[str, ...] = DEFAULT_CLASSES
    latent_channels: int = 4
    autoencoder_channels: tuple[int, int, int] = (8, 16, 32)
    denoiser_channels: tuple[int, int, int] = (32, 64, 64)
    timesteps: int = 1000

    def __post_init__(self) -> None:
        check_box(self.box)

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        x, y, z = (n // LATENT_DOWNSAMPLING for n in self.box)
        return self.latent_channels, x, y, z

    @property
    def public_class(self) -> int:
        """The embedding row of public, unlabelled CT: the one after every class."""
        return len(self.classes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FoundationSpec:
        box = tuple(int(n) for n in data["box"])
        return cls(
            box=(box[0], box[1], box[2]),
            spacing_mm=float(data["spacing_mm"]),
            window_hu=(float(data["window_hu"][0]), float(data["window_hu"][1])),
            classes=tuple(data["classes"]),
            latent_channels=int(data["latent_channels"]),
            autoencoder_channels=tuple(int(c) for c in data["autoencoder_channels"]),  # type: ignore[arg-type]
            denoiser_channels=tuple(int(c) for c in data["denoiser_channels"]),  # type: ignore[arg-type]
            timesteps=int(data["timesteps"]),
        )


def build_autoencoder(spec: FoundationSpec) -> AutoencoderKL:
    # No attention: at these sizes it costs more CPU time than it adds; GroupNorm groups fit the
    # narrowest level.
    return AutoencoderKL(
        spatial_dims=3,
        in_channels=2,
        out_channels=2,
        num_res_blocks=1,
        channels=spec.autoencoder_channels,
        attention_levels=(False, False, False),
        latent_channels=spec.latent_channels,
        norm_num_groups=min(8, spec.autoencoder_channels[0]),
        with_encoder_nonlocal_attn=False,
        with_decoder_nonlocal_attn=False,
    )


def build_denoiser(spec: FoundationSpec) -> DiffusionModelUNet:
    # Attention only at the coarsest level (a few hundred latent positions), where it is cheap
    # and relates the two sides of the chest.
    return DiffusionModelUNet(
        spatial_dims=3,
        in_channels=spec.latent_channels,
        out_channels=spec.latent_channels,
        num_res_blocks=1,
        channels=spec.denoiser_channels,
        attention_levels=(False, False, True),
        norm_num_groups=min(8, spec.denoiser_channels[0]),
        num_head_channels=16,
        num_class_embeds=len(spec.classes) + 1,
    )


# The latent diffusion schedule of Rombach et al. (and MAISI); latents are scaled to unit spread,
# so the predicted clean latent must not be clipped to [-1, 1].
_SCHEDULE = {"schedule": "scaled_linear_beta", "beta_start": 0.0015, "beta_end": 0.0195, "clip_sample": False}


def training_scheduler(spec: FoundationSpec) -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=spec.timesteps, **_SCHEDULE)  # type: ignore[arg-type]


def sampling_scheduler(spec: FoundationSpec, steps: int) -> DDIMScheduler:
    scheduler = DDIMScheduler(num_train_timesteps=spec.timesteps, **_SCHEDULE)  # type: ignore[arg-type]
    scheduler.set_timesteps(steps)
    return scheduler
