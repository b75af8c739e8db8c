"""The on-disk layout of a synthetic set, the same for one site's export and the pooled set.

    <set>/dataset.json  MONAI datalist {"training": [{"image", "label", "class", "site"}, ...]}
    <set>/card.json     DatasetCard: sites, what each spent, generator, class counts, shape, spacing
    <set>/labels.csv    file,class,site
    <set>/images/*.nii.gz float32, window scaled to [-1, 1], RAS affine with the real spacing
    <set>/masks/*.nii.gz  uint8 lesion masks
    <set>/SHA256SUMS    "<sha256>  <path>" for every other file

A set is written into a hidden staging folder beside its target and renamed into place when
complete, so a reader never sees half a set and an existing set is never overwritten.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from shared.errors import FedsynthError
from shared.hashing import file_sha256
from shared.schemas import DatasetCard

SUMS = "SHA256SUMS"


class SyntheticSetError(FedsynthError):
    """A synthetic set folder that cannot be written, or whose files do not match its checksums."""


@dataclass(frozen=True)
class SetItem:
    name: str  # file stem, unique in the set
    image: NDArray[np.float32]
    mask: NDArray[np.uint8]
    label: str
    site: str


def write_synthetic_set(
    target: Path, items: Sequence[SetItem], card: DatasetCard, *, spacing_mm: float
) -> str:
    """Write the set to `target` (which must not exist); return the sha256 of its SHA256SUMS."""
    if target.exists():
        raise SyntheticSetError(f"{target} already exists; choose a new folder (nothing was changed)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "images").mkdir(parents=True)
    (staging / "masks").mkdir()
    affine = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    datalist, rows = [], []
    for item in items:
        image_path, mask_path = f"images/{item.name}.nii.gz", f"masks/{item.name}.nii.gz"
        nib.save(nib.Nifti1Image(item.image.astype(np.float32), affine), staging / image_path)
        nib.save(nib.Nifti1Image(item.mask.astype(np.uint8), affine), staging / mask_path)
        datalist.append({"image": image_path, "label": mask_path, "class": item.label, "site": item.site})
        rows.append((image_path, item.label, item.site))
    (staging / "dataset.json").write_text(json.dumps({"training": datalist}, indent=1) + "\n")
    labels = io.StringIO()
    writer = csv.writer(labels, lineterminator="\n")
    writer.writerow(["file", "class", "site"])
    writer.writerows(rows)
    (staging / "labels.csv").write_text(labels.getvalue())
    card.write(staging / "card.json")
    sums = "".join(f"{file_sha256(staging / rel)}  {rel}\n" for rel in _files(staging))
    (staging / SUMS).write_text(sums)
    staging.rename(target)
    return hashlib.sha256(sums.encode()).hexdigest()


def verify_synthetic_set(folder: Path) -> int:
    """Check every file against SHA256SUMS and that nothing unlisted is present; return the file count."""
    try:
        lines = (folder / SUMS).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SyntheticSetError(f"cannot read {folder / SUMS}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SyntheticSetError(f"{folder / SUMS} is not a checksum list (not UTF-8 text)") from None
    listed: dict[str, str] = {}
    for line in filter(None, lines):
        digest, _, rel = line.partition("  ")
        listed[rel] = digest
    present = set(_files(folder))
    if present != set(listed):
        extra, missing = sorted(present - set(listed)), sorted(set(listed) - present)
        raise SyntheticSetError(f"{folder}: files not as listed in {SUMS} (extra {extra}, missing {missing})")
    for rel, digest in listed.items():
        if file_sha256(folder / rel) != digest:
            raise SyntheticSetError(f"{folder / rel} does not match its sha256 in {SUMS}")
    return len(listed)


def _files(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != SUMS
    )
