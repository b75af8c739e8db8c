"""A trained diagnostic model on disk: safetensors weights and a metadata card (MONAI-bundle style).

    <model>/classifier.safetensors
    <model>/segmenter.safetensors    (task "segment" or "both")
    <model>/metadata.json            classes, input, intensity, training data and its card, versions, metrics

Loading never unpickles anything, and checks every weight file against the card's sha256, so a
site that scores a model knows it scores exactly the one the card describes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import monai
import numpy as np
import torch
from numpy.typing import NDArray
from safetensors.torch import load_file, save_file
from torch import nn

from shared import __version__
from shared.diagnosis.networks import build_classifier, build_segmenter
from shared.errors import FedsynthError
from shared.hashing import file_sha256

METADATA = "metadata.json"
Task = Literal["classify", "segment", "both"]


class ModelError(FedsynthError):
    """A model folder that is missing files, does not match its card, or does not fit the data."""


@dataclass
class DiagnosticModel:
    classifier: nn.Module | None
    segmenter: nn.Module | None
    metadata: dict[str, Any]

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.metadata["classes"])

    @property
    def cube(self) -> int:
        return int(self.metadata["input"]["cube"])

    def probabilities(
        self, images: NDArray[np.float32], *, device: torch.device, batch: int = 16
    ) -> NDArray[np.float64]:
        if self.classifier is None:
            raise ModelError("this model has no classifier (trained with --task segment)")
        scores = _batched(self.classifier, images, device, batch, lambda y: torch.softmax(y.float(), dim=1))
        return scores.astype(np.float64)

    def lesion_masks(
        self, images: NDArray[np.float32], *, device: torch.device, batch: int = 8
    ) -> NDArray[np.bool_]:
        if self.segmenter is None:
            raise ModelError("this model has no segmenter (trained with --task classify)")
        return _batched(self.segmenter, images, device, batch, lambda y: y.argmax(dim=1).bool())


@torch.no_grad()
def _batched(
    net: nn.Module,
    images: NDArray[np.float32],
    device: torch.device,
    batch: int,
    finish: Callable[[torch.Tensor], torch.Tensor],
) -> NDArray[Any]:
    """Run `net` over the cubes in batches, in eval mode, and bring the finished outputs back."""
    net.eval()
    out = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start : start + batch]).unsqueeze(1).to(device)
        out.append(finish(net(x)).cpu().numpy())
    return np.concatenate(out)


def save_model(folder: Path, model: DiagnosticModel) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    weights: dict[str, str] = {}
    for name, net in (("classifier", model.classifier), ("segmenter", model.segmenter)):
        if net is None:
            continue
        path = folder / f"{name}.safetensors"
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))
        tmp.replace(path)
        weights[name] = file_sha256(path)
    model.metadata.update(
        weights_sha256=weights,
        versions={"fedsynth": __version__, "torch": torch.__version__, "monai": monai.__version__},
        saved_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    tmp = folder / f".{METADATA}.tmp"
    tmp.write_text(json.dumps(model.metadata, indent=2) + "\n")
    tmp.replace(folder / METADATA)


def model_sha256(folder: Path) -> str:
    """One hash for the whole model: its card, which holds every weight file's hash."""
    return file_sha256(folder / METADATA)


def load_model(folder: Path, *, device: torch.device) -> DiagnosticModel:
    try:
        metadata = json.loads((folder / METADATA).read_text())
        cube, classes = int(metadata["input"]["cube"]), len(metadata["classes"])
        nets: dict[str, nn.Module | None] = {"classifier": None, "segmenter": None}
        for name, digest in metadata["weights_sha256"].items():
            path = folder / f"{name}.safetensors"
            if file_sha256(path) != digest:
                raise ModelError(f"{path} does not match the sha256 in {folder / METADATA}")
            net = build_classifier(cube=cube, classes=classes) if name == "classifier" else build_segmenter()
            net.load_state_dict(load_file(str(path), device="cpu"))
            nets[name] = net.to(device).eval()
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load the model in {folder}: {exc}") from None
    return DiagnosticModel(nets["classifier"], nets["segmenter"], metadata)
