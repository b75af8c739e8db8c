"""Read a dataset folder (pooled synthetic set or phantom dataset) into arrays, after checking it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from shared.errors import FedsynthError
from shared.schemas import DatasetCard
from shared.synthetic_set import verify_synthetic_set


class DatasetError(FedsynthError):
    """A dataset folder that is incomplete, inconsistent or fails its checksums."""


@dataclass(frozen=True)
class LoadedDataset:
    images: NDArray[np.float32]  # (N, D, D, D) in [-1, 1]
    masks: NDArray[np.uint8]  # (N, D, D, D)
    labels: NDArray[np.int64]  # (N,) indices into card.classes
    card: DatasetCard
    sites: tuple[str, ...] = ()  # the site of each case, as dataset.json names it

    def __len__(self) -> int:
        return len(self.labels)


def load_dataset(folder: Path) -> LoadedDataset:
    verify_synthetic_set(folder)
    card = DatasetCard.read(folder / "card.json")
    try:
        entries = json.loads((folder / "dataset.json").read_text())["training"]
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{folder / 'dataset.json'} is not a datalist: {exc}") from None
    if not entries:
        raise DatasetError(f"{folder} holds no cases")
    images, masks, labels, sites = [], [], [], []
    for n, entry in enumerate(entries):
        if entry.get("class") not in card.classes:
            raise DatasetError(
                f"{folder / 'dataset.json'} entry {n}: class {entry.get('class')!r} is not in the card"
            )
        image = np.asarray(_nifti(folder / entry["image"]).dataobj, dtype=np.float32)
        mask = np.asarray(_nifti(folder / entry["label"]).dataobj, dtype=np.uint8)
        if image.shape != tuple(card.volume_shape) or mask.shape != image.shape:
            raise DatasetError(f"{entry['image']}: shape {image.shape}, the card says {card.volume_shape}")
        if not np.isfinite(image).all() or image.min() < -1.001 or image.max() > 1.001:
            raise DatasetError(f"{entry['image']}: values outside [-1, 1]")
        images.append(image)
        masks.append(mask)
        labels.append(card.classes.index(entry["class"]))
        sites.append(str(entry.get("site", "")))
    return LoadedDataset(
        np.stack(images), np.stack(masks), np.asarray(labels, dtype=np.int64), card, tuple(sites)
    )


def _nifti(path: Path) -> nib.Nifti1Image:
    try:
        return cast(nib.Nifti1Image, nib.load(path))
    except Exception as exc:  # nibabel raises several kinds for a damaged file
        raise DatasetError(f"{path} is not a readable NIfTI file ({type(exc).__name__})") from None
