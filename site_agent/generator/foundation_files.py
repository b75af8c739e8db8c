"""A foundation's two networks inside a generator's own file, for the backends that start from one.

A run folder must sample without the foundation at hand, so `ldm3d` and `lesionstats` save the
autoencoder and the denoiser they draw with beside what the site learnt; the spec in the card says
how to build them again.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet

from shared.crop_box import box_text
from shared.foundation.artefact import Foundation
from shared.foundation.networks import FoundationSpec, build_autoencoder, build_denoiser
from site_agent.generator.backend import GeneratorError

AUTOENCODER, DENOISER = "autoencoder.", "denoiser."


def check_fits(foundation: Foundation, box: tuple[int, int, int]) -> None:
    """A foundation draws boxes of one size: the site's crop must be that size."""
    if tuple(box) != tuple(foundation.spec.box):
        raise GeneratorError(
            f"the foundation {foundation.card.foundation_id} draws {box_text(foundation.spec.box)} boxes, "
            f"this site crops {box_text(box)}: train a foundation at the site's box"
        )


def network_weights(autoencoder: torch.nn.Module, denoiser: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = {f"{AUTOENCODER}{k}": v for k, v in autoencoder.state_dict().items()}
    return state | {f"{DENOISER}{k}": v for k, v in denoiser.state_dict().items()}


def network_card(spec: FoundationSpec, scale_factor: float, foundation: tuple[str, str]) -> dict[str, Any]:
    return {
        "foundation_id": foundation[0],
        "foundation_sha256": foundation[1],
        "spec": spec.to_json(),
        "scale_factor": scale_factor,
    }


def load_networks(
    card: dict[str, Any], state: dict[str, torch.Tensor], device: torch.device
) -> tuple[FoundationSpec, AutoencoderKL, DiffusionModelUNet]:
    """The spec and both networks, in eval mode on `device`; KeyError or RuntimeError when the file
    does not hold them."""
    spec = FoundationSpec.from_json(card["spec"])
    autoencoder, denoiser = build_autoencoder(spec), build_denoiser(spec)
    for net, prefix in ((autoencoder, AUTOENCODER), (denoiser, DENOISER)):
        net.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    return spec, autoencoder.to(device).eval(), denoiser.to(device).eval()
