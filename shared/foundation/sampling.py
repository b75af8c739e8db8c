"""Drawing boxes from a foundation: noise -> DDIM steps of the denoiser -> the decoder.

The image and the lesion mask come out together, as the autoencoder's two channels (the mask is
where its channel is above 0), so a drawn lesion and its mask cannot disagree about where it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet
from numpy.typing import NDArray

from shared.foundation.networks import FoundationSpec, sampling_scheduler

SAMPLING_STEPS = 50


@dataclass(frozen=True)
class Drawn:
    images: NDArray[np.float32]  # (K, X, Y, Z) in [-1, 1], RAS
    masks: NDArray[np.uint8]  # (K, X, Y, Z) in {0, 1}


@torch.no_grad()
def draw(
    spec: FoundationSpec,
    autoencoder: AutoencoderKL,
    denoiser: DiffusionModelUNet,
    scale_factor: float,
    class_rows: NDArray[np.int64],
    *,
    seed: int,
    steps: int = SAMPLING_STEPS,
    batch_size: int = 8,
) -> Drawn:
    """One box per entry of `class_rows` (embedding rows: a class's index, or `spec.public_class`)."""
    device = next(denoiser.parameters()).device
    autoencoder.eval()
    denoiser.eval()
    generator = torch.Generator().manual_seed(seed)
    images, masks = [], []
    for start in range(0, len(class_rows), batch_size):
        rows = torch.as_tensor(class_rows[start : start + batch_size], dtype=torch.long, device=device)
        latent = torch.randn((len(rows), *spec.latent_shape), generator=generator).to(device)
        scheduler = sampling_scheduler(spec, steps)
        for t in scheduler.timesteps:
            timesteps = torch.full((len(rows),), int(t), device=device, dtype=torch.long)
            noise = denoiser(latent, timesteps=timesteps, class_labels=rows)
            latent, _ = scheduler.step(noise, int(t), latent)
        decoded = autoencoder.decode_stage_2_outputs(latent / scale_factor).float().clamp(-1.0, 1.0).cpu()
        images.append(decoded[:, 0].numpy())
        masks.append((decoded[:, 1] > 0).numpy().astype(np.uint8))
    return Drawn(np.concatenate(images).astype(np.float32), np.concatenate(masks))
