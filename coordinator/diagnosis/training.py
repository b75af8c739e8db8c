"""`coordinator model train`: the diagnostic model from one dataset folder.

The default task, `segment`, trains a segmenter of background plus the lesion classes, whose
predicted lesion volumes give the case's class (see `shared.diagnosis.bundle`); `classify` trains
the whole-volume classifier, `both` the two together. Class-balanced sampling (each class drawn
equally often, whatever its count), MONAI augmentations that keep anatomy where it is (small
rotations and shifts; no left-right flips: the heart and the aorta are on one side) and that vary
what differs between scanners (voxel size through scaling, noise, kernel sharpness through blur
and sharpening, HU calibration through an intensity offset, contrast through intensity scaling),
a stratified validation split, early stopping on the validation score, and the best weights
written as they improve, so a crash leaves a usable model.

The segmenter alone trains on crops of two thirds of the box along each axis (`crop_share`), a
third of them around a lesion voxel, and is validated and used on whole boxes: on the `--scale ci`
phantom hospitals that trained the pooled real model 2.6 times faster than whole boxes (bench.utility
measures what it scores). The best epoch is chosen, and training stopped, on the validation macro
AUC averaged with the mean lesion Dice (`_selection_score`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.transforms import (
    Compose,
    RandAffined,
    RandCropByPosNegLabeld,
    RandGaussianNoised,
    RandGaussianSharpend,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropd,
)
from torch import nn

from coordinator.diagnosis.distributed import join_world
from coordinator.errors import CoordinatorError
from shared.diagnosis.bundle import DiagnosticModel, Task, lesion_classes, save_model, voxel_labels
from shared.diagnosis.dataset import LoadedDataset, load_dataset
from shared.diagnosis.head import CaseHead, fit_head
from shared.diagnosis.lesion_features import feature_names
from shared.diagnosis.metrics import dice, macro_auc
from shared.diagnosis.networks import build_classifier, build_segmenter


class TrainingError(CoordinatorError):
    """A dataset that cannot train the asked model (too few cases, no masks for segmentation)."""


HEAD_AUGMENTED_COPIES = 2


@dataclass(frozen=True)
class TrainOptions:
    task: Task = "segment"
    epochs: int = 60
    patience: int = 12
    batch_size: int = 8
    learning_rate: float = 1e-3
    validation_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    # The segmenter alone trains on crops of this share of the box along each axis (a third of them
    # around a lesion voxel), and is scored and used on whole boxes: a fully convolutional network
    # reads any size. A crop of two thirds holds about a quarter of the voxels. None: whole boxes.
    crop_share: float | None = 2.0 / 3.0


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    epochs: int
    loss: float
    validation: float | None  # macro AUC of the case probabilities (mean Dice when it cannot be estimated)
    best: float | None


def _augment(seed: int) -> Compose:
    keys = ["image", "mask"]
    # The window [-160, 240] HU spans 2 units: 0.05 is 10 HU of calibration offset, 0.05 of noise
    # is 10 HU (the sites' scanners range 8-30 HU).
    augment = Compose(
        [
            RandAffined(
                keys,
                prob=0.8,
                rotate_range=(0.12, 0.12, 0.12),
                scale_range=(0.1, 0.1, 0.1),  # voxel size: sites resample from 0.6-1 mm, 1-5 mm
                translate_range=(2, 2, 2),
                mode=("bilinear", "nearest"),
                padding_mode="border",
            ),
            RandGaussianSmoothd(
                "image", sigma_x=(0.3, 0.8), sigma_y=(0.3, 0.8), sigma_z=(0.3, 0.8), prob=0.25
            ),  # soft kernels
            RandGaussianSharpend("image", prob=0.15),  # sharp kernels
            RandScaleIntensityd("image", factors=0.1, prob=0.5),
            RandShiftIntensityd("image", offsets=0.05, prob=0.5),
            RandGaussianNoised("image", std=0.05, prob=0.5),
        ]
    )
    augment.set_random_state(seed)
    return augment


def crop_size(box: tuple[int, ...], share: float) -> tuple[int, ...]:
    """The crop of `share` of the box along each axis, in multiples of 8 (the segmenter halves three
    times) and at least 16."""
    return tuple(min(n, max(16, round(n * share / 8.0) * 8)) for n in box)


def _cropping(seed: int, size: tuple[int, ...]) -> tuple[RandCropByPosNegLabeld, RandSpatialCropd]:
    """Crops of a case with a lesion (a third around one of its voxels, the rest anywhere) and of
    one without. Half around a lesion made the segmenter see lesions everywhere on whole boxes: on
    the pooled phantom cases its validation Dice was 0.52 against 0.58 with a third (seed 0)."""
    lesion = RandCropByPosNegLabeld(["image", "mask"], label_key="mask", spatial_size=size, pos=1, neg=2)
    anywhere = RandSpatialCropd(["image", "mask"], roi_size=size, random_size=False)
    lesion.set_random_state(seed)
    anywhere.set_random_state(seed + 1)
    return lesion, anywhere


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        cut = max(1, round(len(members) * fraction)) if len(members) > 1 else 0
        validation += members[:cut].tolist()
        train += members[cut:].tolist()
    return np.array(sorted(train)), np.array(sorted(validation))


def lesion_weights(targets: np.ndarray, lesions: int) -> torch.Tensor:
    """Loss weights of background and each lesion class: small lesions (a 2 cm nerve-sheath tumour
    holds a sixth of the voxels of a teratoma) weigh more, by the square root of how much rarer
    their voxels are than the average lesion class's; background keeps weight 1."""
    counts = np.bincount(targets.ravel(), minlength=1 + lesions)[1:].astype(np.float64)
    present = counts > 0
    weights = np.ones(1 + lesions)
    weights[1:][present] = np.sqrt(counts[present].mean() / counts[present])
    return torch.as_tensor(weights, dtype=torch.float32)


def train_model(
    dataset_dir: Path, out: Path, options: TrainOptions, progress: Callable[[EpochReport], None] | None = None
) -> DiagnosticModel:
    data = load_dataset(dataset_dir)
    classes = data.card.classes
    if len(data) < 2 * len(classes):
        raise TrainingError(
            f"{dataset_dir} has {len(data)} cases; training needs at least {2 * len(classes)}"
        )
    segment = options.task in ("segment", "both")
    classify = options.task in ("classify", "both")
    if segment and not data.masks.any():
        raise TrainingError(f"{dataset_dir} has no lesion in any mask; it cannot train a segmenter")
    world = join_world(options.device)
    torch.manual_seed(options.seed)  # the same initial weights in every process
    device = world.device(options.device)
    box = tuple(int(n) for n in data.images.shape[1:])
    train_idx, val_idx = stratified_split(data.labels, options.validation_fraction, options.seed)
    targets = voxel_labels(data.masks, data.labels, classes)

    classifier = build_classifier(box=box, classes=len(classes)).to(device) if classify else None  # type: ignore[arg-type]
    lesions = lesion_classes(classes)
    segmenter = build_segmenter(lesion_classes=len(lesions)).to(device) if segment else None
    train_classifier, train_segmenter = world.wrap(classifier), world.wrap(segmenter)
    per_process_batch = max(1, options.batch_size // world.size)
    params = [p for net in (classifier, segmenter) if net is not None for p in net.parameters()]
    optimizer = torch.optim.AdamW(params, lr=options.learning_rate, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=options.epochs)
    # Dice over the whole batch: most cases hold one lesion class, so per-case Dice of the others
    # would be undefined. Weighting the lesion classes raised the pooled phantom model's best
    # validation macro AUC by epoch 23 from 0.73 to 0.77 (one seed each, --scale ci data).
    loss_weight = lesion_weights(targets[train_idx], len(lesions))
    ce = nn.CrossEntropyLoss()
    dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, batch=True, weight=loss_weight).to(device)
    own_seed = options.seed + 1000 * world.rank  # each process its own augmentations
    augment = _augment(own_seed)
    cropped = segment and not classify and options.crop_share is not None
    around_lesion, anywhere = _cropping(own_seed, crop_size(box, options.crop_share or 1.0))

    def example(i: int) -> dict[Any, Any]:
        item: Any = {"image": data.images[i][None], "mask": targets[i][None].astype(np.float32)}
        if cropped:  # cropped first: the augmentations then work on a quarter of the voxels
            item = around_lesion(item)[0] if targets[i].any() else anywhere(item)
        return augment(item)  # type: ignore[no-any-return]

    counts = np.bincount(data.labels[train_idx], minlength=len(classes))
    weights = torch.as_tensor(1.0 / counts[data.labels[train_idx]], dtype=torch.float64)
    sampler_rng = torch.Generator().manual_seed(options.seed)

    metadata: dict[str, Any] = {
        "schema_id": "fedsynth.model_card/1",
        "name": "fedsynth mediastinal CT diagnostic model",
        "task": options.task,
        "classes": list(classes),
        "input": {
            "box": list(box),
            "spacing_mm": list(data.card.spacing_mm),
            "channels": 1,
            "intensity": data.card.intensity,
        },
        "outputs": {
            "classifier": "softmax probabilities, one per class, in `classes` order" if classify else None,
            "segmenter": (
                f"{1 + len(lesions)} channels: background, then {', '.join(lesions)}" if segment else None
            ),
        },
        "training": {
            "dataset_id": data.card.dataset_id,
            "dataset_version": data.card.version,
            "dataset_card": data.card.to_dict(),
            "cases": len(train_idx),
            "validation_cases": len(val_idx),
            "processes": world.size,
            "options": {k: getattr(options, k) for k in options.__dataclass_fields__ if k != "device"},
        },
    }
    best: float | None = None
    best_epoch, stale = 0, 0
    model = DiagnosticModel(classifier, segmenter, metadata)
    for epoch in range(1, options.epochs + 1):
        for net in (classifier, segmenter):
            if net is not None:
                net.train()
        drawn = torch.multinomial(weights, len(train_idx), replacement=True, generator=sampler_rng).numpy()
        order = world.share(drawn)  # the same draw everywhere, a share each
        losses = []
        for start in range(0, len(order), per_process_batch):
            batch = [example(train_idx[i]) for i in order[start : start + per_process_batch]]
            x = torch.stack([torch.as_tensor(b["image"]) for b in batch]).float().to(device)
            y = torch.as_tensor(data.labels[train_idx[order[start : start + per_process_batch]]]).to(device)
            loss = torch.zeros((), device=device)
            if train_classifier is not None:
                loss = loss + ce(train_classifier(x), y)
            if train_segmenter is not None:
                m = torch.stack([torch.as_tensor(b["mask"]) for b in batch]).round().to(device)
                loss = loss + dice_ce(train_segmenter(x), m)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach().item())
        scheduler.step()
        score: float | None = None
        if world.leader:  # the weights are the same in every process: one scores and saves
            scores = _scores(model, data, val_idx, device)
            score = _selection_score(scores)
            if score is not None and (best is None or score > best):
                best, best_epoch, stale = score, epoch, 0
                metadata["metrics"] = {"validation_score": score, "best_epoch": epoch, **scores}
                save_model(out, model)  # the best so far, on disk at once
            else:
                stale += 1
            if progress:
                progress(EpochReport(epoch, options.epochs, float(np.mean(losses)), score, best))
        if world.agree(stale >= options.patience):
            break
    metadata["training"]["epochs_run"] = epoch
    metadata["training"]["stopped_early"] = epoch < options.epochs
    final = DiagnosticModel(classifier, segmenter, metadata)
    if world.leader:
        if best_epoch > 0:  # the weights on disk are the best epoch's
            from shared.diagnosis.bundle import load_model

            final = load_model(out, device=device)
            final.metadata.update({"training": metadata["training"]})
        if final.segmenter is not None:
            # Fitted on the training cases only, so that the validation cases score it honestly.
            final.head = _fit_case_head(final, data, train_idx, augment, device)
            final.metadata["training"]["case_head"] = {
                "features": list(feature_names(lesions)),
                "cases": len(train_idx),
                "augmented_copies": HEAD_AUGMENTED_COPIES,
            }
            if len(val_idx):
                final.metadata.setdefault("metrics", {}).update(
                    {f"with_head_{k}": v for k, v in _scores(final, data, val_idx, device).items()}
                )
        save_model(out, final)
    world.barrier()
    return final


def _fit_case_head(
    model: DiagnosticModel, data: LoadedDataset, idx: np.ndarray, augment: Compose, device: torch.device
) -> CaseHead:
    """The case head, fitted on the features the trained segmenter gives every training case, as
    it is and in augmented copies: on its own training cases the segmenter is sharper than on a
    new hospital's, and the copies show the head the rougher masks it will meet."""
    images = [data.images[idx]]
    for _ in range(HEAD_AUGMENTED_COPIES):
        copies = [
            augment({"image": data.images[i][None], "mask": data.masks[i][None].astype(np.float32)})["image"]
            for i in idx
        ]
        images.append(np.stack([np.asarray(c[0], dtype=np.float32) for c in copies]))
    features = np.concatenate([model.lesion_features(x, device=device) for x in images])
    labels = np.tile(data.labels[idx], len(images))
    return fit_head(features, labels, len(model.classes))


def _selection_score(scores: dict[str, float]) -> float | None:
    """What picks the best epoch and stops training: the validation macro AUC, averaged with the
    mean lesion Dice when the model segments. The case head, fitted after training, reads the
    lesion the segmenter outlines, so a segmenter that outlines lesions well is what it needs;
    during training the AUC comes from the lesion class volumes alone, a noisy stand-in that
    peaked by itself at epoch 5 in one pooled phantom run, with a Dice of 0.04, and stopped it
    there. Dice alone decides only when no AUC can be estimated."""
    auc, dice = scores.get("validation_macro_auc"), scores.get("validation_mean_dice")
    if auc is None:
        return dice
    return auc if dice is None else (auc + dice) / 2.0


def _scores(
    model: DiagnosticModel, data: LoadedDataset, idx: np.ndarray, device: torch.device
) -> dict[str, float]:
    scores: dict[str, float] = {}
    if len(idx) == 0:
        return scores
    probabilities, predicted = model.probabilities_and_lesions(data.images[idx], device=device)
    value = macro_auc(probabilities, data.labels[idx])
    if value is not None:
        scores["validation_macro_auc"] = value
    if predicted is not None:
        values = [dice(p, t > 0) for p, t in zip(predicted, data.masks[idx], strict=True)]
        present = [v for v in values if v is not None]
        if present:
            scores["validation_mean_dice"] = float(np.mean(present))
    return scores
