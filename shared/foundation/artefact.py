"""A foundation model on disk: two safetensors files and the card that hashes them.

    <foundation>/autoencoder.safetensors
    <foundation>/denoiser.safetensors
    <foundation>/foundation.json        the card (shared.schemas.FoundationCard)
    <foundation>/anatomy.safetensors    optional: a bank of public boxes (shared.foundation.anatomy)

The foundation's sha256 is its card's: the card holds each weight file's hash, so one hash names
the whole artefact, and loading checks every file against the card before building anything.
Loading never unpickles. The file names, that hash, and installing a copy that was sent live in
files.py, which needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet
from numpy.typing import NDArray
from safetensors.torch import load_file, save_file
from torch import nn

from shared.foundation.files import (
    ANATOMY,
    ANATOMY_FILE,
    CARD,
    WEIGHTS,
    FoundationError,
    checked_card,
    foundation_sha256,
)
from shared.foundation.networks import FoundationSpec, build_autoencoder, build_denoiser
from shared.hashing import file_sha256
from shared.schemas.foundation_card import CorpusSource, FoundationCard


@dataclass
class Foundation:
    spec: FoundationSpec
    autoencoder: AutoencoderKL
    denoiser: DiffusionModelUNet
    card: FoundationCard
    anatomy: NDArray[np.uint8] | None = None  # the public anatomy bank, (K, X, Y, Z)

    @property
    def scale_factor(self) -> float:
        return self.card.scale_factor

    def attach_anatomy(self, bank: NDArray[np.uint8], sources: Sequence[CorpusSource]) -> None:
        """Carry `bank` as the public anatomy bank, its sources named on the card."""
        self.anatomy = bank
        self.card = self.card.model_copy(update={"anatomy_sources": tuple(sources)})

    def networks(self) -> dict[str, nn.Module]:
        return dict(zip(WEIGHTS, (self.autoencoder, self.denoiser), strict=True))


def save_foundation(folder: Path, foundation: Foundation) -> str:
    """Write the weights and the card (weights first: a card is never ahead of its files);
    return the foundation's sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    hashes: dict[str, str] = {}
    for name, net in foundation.networks().items():
        path = folder / f"{name}.safetensors"
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))
        tmp.replace(path)
        hashes[name] = file_sha256(path)
    if foundation.anatomy is not None:
        path = folder / ANATOMY_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({"images": torch.from_numpy(np.ascontiguousarray(foundation.anatomy))}, str(tmp))
        tmp.replace(path)
        hashes[ANATOMY] = file_sha256(path)
    foundation.card = foundation.card.model_copy(update={"weights_sha256": hashes})
    foundation.card.write(folder / CARD)
    return foundation_sha256(folder)


def load_foundation(folder: Path, *, sha256: str | None = None, device: str = "cpu") -> Foundation:
    """The foundation in `folder`, every file checked against its card (and the card against
    `sha256`, when given); networks on `device`, in eval mode."""
    card = checked_card(folder, sha256=sha256)
    spec = FoundationSpec.from_json(card.spec)
    autoencoder, denoiser = build_autoencoder(spec), build_denoiser(spec)
    nets: dict[str, nn.Module] = {"autoencoder": autoencoder, "denoiser": denoiser}
    for name, net in nets.items():
        path = folder / f"{name}.safetensors"
        try:
            net.load_state_dict(load_file(str(path), device=device))
        except RuntimeError as exc:
            raise FoundationError(
                f"foundation {folder.name}: {path.name} does not fit its card: {exc}"
            ) from None
        net.to(torch.device(device)).eval()
    return Foundation(spec, autoencoder, denoiser, card, _load_anatomy(folder, card))


def _load_anatomy(folder: Path, card: FoundationCard) -> NDArray[np.uint8] | None:
    if ANATOMY not in card.weights_sha256:
        return None
    path = folder / ANATOMY_FILE  # its hash was checked with the card's other files
    images = load_file(str(path)).get("images")
    if (
        images is None
        or images.dtype != torch.uint8
        or images.ndim != 4
        or len(images) == 0
        or tuple(images.shape[1:]) != tuple(card.spec["box"])
    ):
        raise FoundationError(
            f"foundation {folder.name}: {path.name} does not hold uint8 boxes of its card's box"
        )
    return images.numpy()
