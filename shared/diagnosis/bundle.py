"""A trained diagnostic model on disk: safetensors weights and a metadata card (MONAI-bundle style).

    <model>/classifier.safetensors   (task "classify" or "both")
    <model>/segmenter.safetensors    (task "segment", the default, or "both")
    <model>/head.safetensors         the segmenter's case head (task "segment" or "both")
    <model>/metadata.json            classes, input, intensity, training data and its card, versions, metrics

The segmenter labels every voxel background or one of the lesion classes (every class but
`normal`). Its case-level probabilities come from what it segments, through the case head: a linear
model on the predicted lesion's features (`shared.diagnosis.lesion_features`: size, HU mix,
position, margin, and the segmenter's own class shares). Without a head (a model saved before the
head is fitted, during training) they are each lesion class's volume in the predicted lesion,
against a pseudo-volume of 1 ml for `normal`, so a case with no lesion voxel is `normal` and a
large confident lesion is its class.

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
from shared.classes import NORMAL
from shared.crop_box import Box
from shared.diagnosis.head import CaseHead
from shared.diagnosis.lesion_features import feature_names, lesion_features, window_of
from shared.diagnosis.model_files import METADATA, WEIGHTS, ModelError
from shared.diagnosis.networks import build_classifier, build_segmenter
from shared.hashing import file_sha256

Task = Literal["classify", "segment", "both"]
TASKS: tuple[Task, ...] = ("segment", "classify", "both")
NORMAL_PSEUDO_ML = 1.0  # a case is normal until its predicted lesion outweighs this much tissue


def lesion_classes(classes: tuple[str, ...]) -> tuple[str, ...]:
    """The segmenter's channels after background, in order."""
    return tuple(c for c in classes if c != NORMAL)


def voxel_labels(
    masks: NDArray[np.uint8], labels: NDArray[np.int64], classes: tuple[str, ...]
) -> NDArray[np.uint8]:
    """Per-voxel targets: 0 background, j + 1 for a lesion voxel of a case of lesion class j."""
    lesions = lesion_classes(classes)
    channel = np.array([lesions.index(c) + 1 if c in lesions else 0 for c in classes], dtype=np.uint8)
    return (masks > 0).astype(np.uint8) * channel[labels].reshape(-1, *([1] * (masks.ndim - 1)))


def case_probabilities(softmax: torch.Tensor, classes: tuple[str, ...], voxel_ml: float) -> torch.Tensor:
    """Class probabilities of whole cases from the segmenter's voxel probabilities (N, 1 + L, ...)."""
    lesion = 1.0 - softmax[:, 0]
    region = (lesion > 0.5).float()
    share = softmax[:, 1:] / lesion.clamp_min(1e-6).unsqueeze(1)
    volumes = (share * region.unsqueeze(1)).flatten(2).sum(2) * voxel_ml
    # The most confident voxel adds a faint volume, so that cases with no predicted lesion still rank.
    volumes = volumes + 0.01 * NORMAL_PSEUDO_ML * softmax[:, 1:].flatten(2).amax(2)
    lesions = lesion_classes(classes)
    has_normal = NORMAL in classes
    total = volumes.sum(1, keepdim=True) + (NORMAL_PSEUDO_ML if has_normal else 0.0)
    out = torch.zeros(softmax.shape[0], len(classes), dtype=torch.float64)
    for j, name in enumerate(lesions):
        out[:, classes.index(name)] = (volumes[:, j] / total[:, 0]).double()
    if has_normal:
        out[:, classes.index(NORMAL)] = (NORMAL_PSEUDO_ML / total[:, 0]).double()
    return out


@dataclass
class DiagnosticModel:
    classifier: nn.Module | None
    segmenter: nn.Module | None
    metadata: dict[str, Any]
    head: CaseHead | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.metadata["classes"])

    @property
    def box(self) -> Box:
        x, y, z = self.metadata["input"]["box"]
        return int(x), int(y), int(z)

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.metadata["input"]["spacing_mm"])) / 1000.0

    def probabilities(
        self, images: NDArray[np.float32], *, device: torch.device, batch: int = 8
    ) -> NDArray[np.float64]:
        """Case-level class probabilities: the classifier's when there is one, else the segmenter's."""
        if self.classifier is not None:
            scores = _batched(
                self.classifier, images, device, batch, lambda y: torch.softmax(y.float(), dim=1)
            )
            return scores.astype(np.float64)
        return self.probabilities_and_lesions(images, device=device, batch=batch)[0]

    def probabilities_and_lesions(
        self, images: NDArray[np.float32], *, device: torch.device, batch: int = 8
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_] | None]:
        """`probabilities` and, with a segmenter, `lesion_masks`, running the segmenter once over the
        volumes rather than once for each: training scores its validation cases both ways every
        epoch, and the second pass cost a tenth of its time."""
        if self.segmenter is None:
            return self.probabilities(images, device=device, batch=batch), None
        window = window_of(self.metadata["input"]["intensity"])
        self.segmenter.eval()
        scores, features, masks = [], [], []
        with torch.no_grad():
            for start in range(0, len(images), batch):
                chunk = images[start : start + batch]
                y = self.segmenter(torch.from_numpy(chunk).unsqueeze(1).to(device))
                softmax = torch.softmax(y.float(), dim=1).cpu()
                masks.append(softmax.argmax(dim=1).numpy() > 0)
                if self.head is not None:
                    features.append(lesion_features(chunk, softmax, window_hu=window, voxel_ml=self.voxel_ml))
                elif self.classifier is None:
                    scores.append(case_probabilities(softmax, self.classes, self.voxel_ml).numpy())
            if self.classifier is not None:
                probabilities = self.probabilities(images, device=device, batch=batch)
            elif self.head is not None:
                logits = self.head(torch.as_tensor(np.concatenate(features)))
                probabilities = torch.softmax(logits.double(), dim=1).numpy()
            else:
                probabilities = np.concatenate(scores).astype(np.float64)
        return probabilities, np.concatenate(masks)

    def lesion_features(
        self, images: NDArray[np.float32], *, device: torch.device, batch: int = 8
    ) -> NDArray[np.float32]:
        """The case head's inputs: the features of the lesion the segmenter predicts in each volume."""
        if self.segmenter is None:
            raise ModelError("this model has no segmenter (trained with --task classify)")
        window = window_of(self.metadata["input"]["intensity"])
        self.segmenter.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(images), batch):
                chunk = images[start : start + batch]
                y = self.segmenter(torch.from_numpy(chunk).unsqueeze(1).to(device))
                softmax = torch.softmax(y.float(), dim=1).cpu()
                out.append(lesion_features(chunk, softmax, window_hu=window, voxel_ml=self.voxel_ml))
        return np.concatenate(out)

    def lesion_masks(
        self, images: NDArray[np.float32], *, device: torch.device, batch: int = 8
    ) -> NDArray[np.bool_]:
        """Where the segmenter sees a lesion of any class."""
        if self.segmenter is None:
            raise ModelError("this model has no segmenter (trained with --task classify)")
        return _batched(self.segmenter, images, device, batch, lambda y: y.argmax(dim=1) > 0)


@torch.no_grad()
def _batched(
    net: nn.Module,
    images: NDArray[np.float32],
    device: torch.device,
    batch: int,
    finish: Callable[[torch.Tensor], torch.Tensor],
) -> NDArray[Any]:
    """Run `net` over the volumes in batches, in eval mode, and bring the finished outputs back."""
    net.eval()
    out = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start : start + batch]).unsqueeze(1).to(device)
        out.append(finish(net(x)).cpu().numpy())
    return np.concatenate(out)


def save_model(folder: Path, model: DiagnosticModel) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    weights: dict[str, str] = {}
    nets = dict(zip(WEIGHTS, (model.classifier, model.segmenter, model.head), strict=True))
    for name, net in nets.items():
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


def load_model(folder: Path, *, device: torch.device) -> DiagnosticModel:
    try:
        metadata = json.loads((folder / METADATA).read_text())
        if "box" not in metadata["input"]:
            raise ModelError(
                f"the model in {folder} takes the first design's cube crop; train a new one on boxes"
            )
        box, classes = tuple(metadata["input"]["box"]), tuple(metadata["classes"])
        lesions = lesion_classes(classes)
        builders: dict[str, Callable[[], nn.Module]] = {
            "classifier": lambda: build_classifier(box=box, classes=len(classes)),
            "segmenter": lambda: build_segmenter(lesion_classes=len(lesions)),
            "head": lambda: CaseHead(len(feature_names(lesions)), len(classes)),
        }
        nets: dict[str, nn.Module | None] = dict.fromkeys(builders)
        for name, digest in metadata["weights_sha256"].items():
            path = folder / f"{name}.safetensors"
            if name not in builders:
                raise ModelError(f"{folder / METADATA} lists weights {name!r}, which no network here has")
            if file_sha256(path) != digest:
                raise ModelError(f"{path} does not match the sha256 in {folder / METADATA}")
            net = builders[name]()
            net.load_state_dict(load_file(str(path), device="cpu"))
            nets[name] = net.to(device).eval()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:  # RuntimeError: weights of another shape
        raise ModelError(f"cannot load the model in {folder}: {exc}") from None
    head = nets["head"]
    return DiagnosticModel(
        nets["classifier"], nets["segmenter"], metadata, head.cpu() if isinstance(head, CaseHead) else None
    )
