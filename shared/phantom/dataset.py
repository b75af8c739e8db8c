"""Writes a phantom hospital's worth of studies: DICOM folders, labels.csv, masks, defects, previews.

The output appears all at once: everything is written into a hidden sibling folder that is renamed
to OUT at the end, so an interrupted run leaves no half-written dataset behind and never touches
an existing one.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shared.classes import DEFAULT_CLASSES
from shared.leftovers import remove_leftovers
from shared.phantom.defects import DEFECTS, DefectRecord
from shared.phantom.dicom_io import spec_for_study, write_series
from shared.phantom.nifti_io import write_mask
from shared.phantom.preview import write_preview
from shared.phantom.profiles import PROFILES, PUBLIC_PROFILE, PhantomError, get_profile
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
    jobs: int = 1  # worker processes; each study is seeded on its own, so the output does not depend on it


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
    get_profile(request.profile)  # an unknown profile fails here, before anything is written
    if request.profile == PUBLIC_PROFILE:
        # A hospital's phantom is labelled; the public corpus must never be (nor hold a class's mass).
        raise PhantomError(
            f"profile {PUBLIC_PROFILE!r} is the foundation model's unlabelled public corpus, which "
            "`coordinator foundation train --phantom-cases N` draws; choose a hospital's profile: "
            f"{', '.join(p for p in PROFILES if p != PUBLIC_PROFILE)}"
        )
    if not 1 <= request.cases <= MAX_CASES:
        raise PhantomError(f"--cases must be between 1 and {MAX_CASES}, got {request.cases}")
    if request.jobs < 1:
        raise PhantomError(f"--jobs must be at least 1, got {request.jobs}")
    out = request.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PhantomError(f"output folder {out} already exists and is not empty; choose a new folder")
    notify = progress or (lambda _message: None)
    labels = assign_labels(request)
    first_of_class = {label: labels.index(label) + 1 for label in set(labels)}
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    cases = [
        _Case(request, staging, index, label, preview=request.preview and first_of_class[label] == index)
        for index, label in enumerate(labels, start=1)
    ]
    defects = (
        [_Defect(request, staging, n, name) for n, name in enumerate(DEFECTS)] if request.defects else []
    )
    _fresh_staging(out, staging)
    try:
        summary = PhantomSummary(out, 0, 0, 0, {c: 0 for c in DEFAULT_CLASSES})
        rows: dict[int, dict[str, object]] = {}
        records: dict[int, DefectRecord] = {}
        tasks: list[_Case | _Defect] = [*cases, *defects]
        for done, (task, result) in enumerate(_run(tasks, request.jobs), start=1):
            if isinstance(task, _Case):
                row, files, size = result
                rows[task.index] = row
                summary.studies += 1
                summary.files += files
                summary.bytes += size
                summary.class_counts[task.label] += 1
                notify(f"study {task.index}/{request.cases}: {task.label} ({done}/{len(tasks)})")
            else:
                records[task.number] = result
                notify(f"defect {task.name} ({done}/{len(tasks)})")
        # Rows in case order whatever order the workers finished in: same seed, same files.
        _write_csv(staging / "labels.csv", LABEL_COLUMNS, [rows[i] for i in sorted(rows)])
        if request.defects:
            summary.defects = [records[n] for n in sorted(records)]
            _write_csv(
                staging / "defects.csv",
                DEFECT_COLUMNS,
                [{c: getattr(d, c) for c in DEFECT_COLUMNS} for d in summary.defects],
            )
        if out.exists():
            out.rmdir()  # only ever an empty folder: checked before anything was written
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    summary.previews = sorted((out / "preview").glob("*.png")) if request.preview else []
    return summary


@dataclass(frozen=True)
class _Case:
    request: PhantomRequest
    staging: Path
    index: int
    label: str
    preview: bool


@dataclass(frozen=True)
class _Defect:
    request: PhantomRequest
    staging: Path
    number: int
    name: str


def _fresh_staging(out: Path, staging: Path) -> None:
    """Create the staging folder, first clearing any a killed run left behind (its process is gone)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out.parent, f".{out.name}.partial-")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()


def _run(tasks: list[_Case | _Defect], jobs: int) -> Iterator[tuple[_Case | _Defect, Any]]:
    """Yield (task, result) as each task finishes, so progress shows as the work goes."""
    if jobs == 1:
        for task in tasks:
            yield task, _work(task)
        return
    # Forked from a clean server process with the phantom already imported: workers start fast
    # and never inherit this process's BLAS threads (a plain fork can deadlock on them).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["shared.phantom.dataset"])
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(_work, task): task for task in tasks}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _work(task: _Case | _Defect) -> Any:
    return _write_case(task) if isinstance(task, _Case) else _write_defect(task)


def _write_case(case: _Case) -> tuple[dict[str, object], int, int]:
    request, profile = case.request, get_profile(case.request.profile)
    study = generate_study(
        profile,
        case.label,
        seed=request.seed,
        index=case.index,
        matrix=request.matrix,
        slice_mm=request.slice_mm,
    )
    shuffle = profile.shuffled if request.shuffle is None else request.shuffle
    shuffle_rng = case_rng(request.seed, profile.name, case.index, "file-order") if shuffle else None
    paths = write_series(
        case.staging / study.identity.folder,
        spec_for_study(study),
        study.identity,
        profile,
        contrast=study.body.contrast,
        shuffle_rng=shuffle_rng,
    )
    mask_rel = f"masks/{study.identity.folder}.nii.gz"
    write_mask(case.staging / mask_rel, study.mask, study.grid)
    if case.preview:
        write_preview(study, case.staging / "preview" / f"{case.label}.png")
    lesion = study.lesion
    row: dict[str, object] = {
        "study_uid": study.identity.study_uid,
        "label": case.label,
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
    return row, len(paths), sum(p.stat().st_size for p in paths)


def _write_defect(defect: _Defect) -> DefectRecord:
    request, profile = defect.request, get_profile(defect.request.profile)
    # Each defect's class comes from its own generator, so results do not depend on worker order.
    label = str(
        case_rng(request.seed, profile.name, defect.number, "defect-label").choice(DEFAULT_CLASSES[1:])
    )
    study = generate_study(
        profile,
        label,
        seed=request.seed,
        index=request.cases + 1 + defect.number,
        matrix=request.matrix,
        slice_mm=request.slice_mm,
    )
    return DEFECTS[defect.name](study, defect.staging / f"defect_{defect.name}")


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def read_labels(out: Path) -> list[dict[str, str]]:
    with (out / "labels.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
