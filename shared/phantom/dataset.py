"""Writes a phantom hospital's worth of studies: DICOM folders, labels.csv, masks, defects, previews.

The output appears all at once: everything is written into a hidden sibling folder that is renamed
to OUT at the end, so an interrupted run leaves no half-written dataset behind and never touches
an existing one.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.classes import DEFAULT_CLASSES
from shared.phantom.defects import DEFECTS, DefectRecord
from shared.phantom.dicom_io import spec_for_study, write_series
from shared.phantom.nifti_io import write_mask
from shared.phantom.preview import write_preview
from shared.phantom.profiles import PhantomError, get_profile
from shared.phantom.scanner import NATIVE_MATRIX
from shared.phantom.study import case_rng, generate_study

LABEL_COLUMNS = (
    "study_uid",
    "label",
    "profile",
    "folder",
    "mask",
    "subtype",
    "compartment",
    "diameter_mm",
    "features",
    "contrast",
    "slices",
    "pixel_spacing_mm",
    "slice_spacing_mm",
)
DEFECT_COLUMNS = ("folder", "study_uid", "defect", "detail", "expected")
MAX_CASES = 10_000

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PhantomRequest:
    out: Path
    cases: int
    profile: str
    seed: int
    matrix: int = NATIVE_MATRIX
    slice_mm: float | None = None
    balanced: bool = False
    shuffle: bool | None = None  # None: as the profile does
    defects: bool = False
    preview: bool = False


@dataclass
class PhantomSummary:
    out: Path
    studies: int
    files: int
    bytes: int
    class_counts: dict[str, int]
    defects: list[DefectRecord] = field(default_factory=list)
    previews: list[Path] = field(default_factory=list)


def assign_labels(request: PhantomRequest) -> list[str]:
    """Class of each case: the profile's prevalence, or an equal share of each class (`balanced`)."""
    rng = case_rng(request.seed, request.profile, 0, "labels")
    if request.balanced:
        labels = [DEFAULT_CLASSES[n % len(DEFAULT_CLASSES)] for n in range(request.cases)]
        rng.shuffle(labels)
        return labels
    prevalence = get_profile(request.profile).prevalence
    p = np.array([prevalence[c] for c in DEFAULT_CLASSES])
    return [str(c) for c in rng.choice(DEFAULT_CLASSES, size=request.cases, p=p)]


def write_phantom(request: PhantomRequest, progress: Progress | None = None) -> PhantomSummary:
    profile = get_profile(request.profile)
    if not 1 <= request.cases <= MAX_CASES:
        raise PhantomError(f"--cases must be between 1 and {MAX_CASES}, got {request.cases}")
    out = request.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PhantomError(f"output folder {out} already exists and is not empty; choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    shuffle = profile.shuffled if request.shuffle is None else request.shuffle
    notify = progress or (lambda _message: None)
    try:
        summary = PhantomSummary(out, 0, 0, 0, {c: 0 for c in DEFAULT_CLASSES})
        rows: list[dict[str, object]] = []
        previewed: set[str] = set()
        for index, label in enumerate(assign_labels(request), start=1):
            study = generate_study(
                profile,
                label,
                seed=request.seed,
                index=index,
                matrix=request.matrix,
                slice_mm=request.slice_mm,
            )
            folder = staging / study.identity.folder
            shuffle_rng = case_rng(request.seed, profile.name, index, "file-order") if shuffle else None
            paths = write_series(
                folder,
                spec_for_study(study),
                study.identity,
                profile,
                contrast=study.body.contrast,
                shuffle_rng=shuffle_rng,
            )
            mask_rel = f"masks/{study.identity.folder}.nii.gz"
            write_mask(staging / mask_rel, study.mask, study.grid)
            if request.preview and label not in previewed:
                write_preview(study, staging / "preview" / f"{label}.png")
                previewed.add(label)
            lesion = study.lesion
            rows.append(
                {
                    "study_uid": study.identity.study_uid,
                    "label": label,
                    "profile": profile.name,
                    "folder": study.identity.folder,
                    "mask": mask_rel,
                    "subtype": lesion.subtype,
                    "compartment": lesion.compartment,
                    "diameter_mm": f"{lesion.diameter_mm:.1f}",
                    "features": ";".join(lesion.features),
                    "contrast": int(study.body.contrast),
                    "slices": study.grid.shape[0],
                    "pixel_spacing_mm": f"{study.grid.spacing[0]:.4f}",
                    "slice_spacing_mm": f"{study.grid.spacing[2]:.4f}",
                }
            )
            summary.studies += 1
            summary.files += len(paths)
            summary.bytes += sum(p.stat().st_size for p in paths)
            summary.class_counts[label] += 1
            notify(f"study {index}/{request.cases}: {label}")
        _write_csv(staging / "labels.csv", LABEL_COLUMNS, rows)

        if request.defects:
            defect_rng = case_rng(request.seed, profile.name, 0, "defect-labels")
            for n, (name, make) in enumerate(DEFECTS.items()):
                label = str(defect_rng.choice(DEFAULT_CLASSES[1:]))
                study = generate_study(
                    profile,
                    label,
                    seed=request.seed,
                    index=request.cases + 1 + n,
                    matrix=request.matrix,
                    slice_mm=request.slice_mm,
                )
                summary.defects.append(make(study, staging / f"defect_{name}"))
                notify(f"defect {n + 1}/{len(DEFECTS)}: {name}")
            _write_csv(
                staging / "defects.csv",
                DEFECT_COLUMNS,
                [{c: getattr(d, c) for c in DEFECT_COLUMNS} for d in summary.defects],
            )
        staging.rename(out) if not out.exists() else _replace_empty(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    summary.previews = sorted((out / "preview").glob("*.png")) if request.preview else []
    return summary


def _replace_empty(staging: Path, out: Path) -> None:
    out.rmdir()  # only ever an empty folder: checked before anything was written
    staging.rename(out)


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def read_labels(out: Path) -> list[dict[str, str]]:
    with (out / "labels.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
