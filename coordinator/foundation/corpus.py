"""The public corpus a foundation learns from, through exactly the site preprocessing.

Public CT means what an operator may legally hold centrally: folders of public chest CT as DICOM
(every CT series in them that passes the site's own series checks, read by the site's own reader,
shared.dicom) or as NIfTI in HU (one CT per `.nii`/`.nii.gz`), and phantom patients of the `public`
profile, drawn in memory: a scanner no hospital uses, lung nodules with their masks, and never a
mediastinal mass of the six classes nor a class label. Every volume goes through
`shared.preprocessing.preprocess`, the function a site's ingestion calls, so the foundation sees
boxes exactly as the hospitals will. A series that cannot hold the box is left out and named.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from coordinator.errors import CoordinatorError
from shared.dicom.checks import SeriesRejected, check_series
from shared.dicom.scan import scan
from shared.dicom.volume import load_hu
from shared.foundation.anatomy import to_bank
from shared.foundation.networks import FoundationSpec
from shared.phantom import generate_study
from shared.phantom.lesions import PUBLIC_FINDINGS
from shared.phantom.nifti_io import site_volume
from shared.phantom.profiles import PUBLIC_PROFILE, get_profile
from shared.preprocessing import PreprocessingError, preprocess
from shared.schemas.foundation_card import CorpusSource

Progress = Callable[[str], None]
NIFTI_SUFFIXES = (".nii", ".nii.gz")
MIN_SLICES = 20  # as a site's [ingest] min_slices: fewer cannot hold a chest at any box


class CorpusError(CoordinatorError):
    """A public corpus that is empty, unreadable, or not public CT as the foundation needs it."""


@dataclass(frozen=True)
class CorpusRequest:
    spec: FoundationSpec
    phantom_cases: int = 0
    phantom_seed: int = 0
    nifti: tuple[Path, ...] = ()
    nifti_licence: str = "see the collection's licence"
    dicom: tuple[Path, ...] = ()
    dicom_licence: str = "see the collection's licence"
    matrix: int = 128  # phantom pixels per row: at 4 mm boxes a 512 matrix adds time, not information
    jobs: int = 1

    # What preprocess() reads (shared.preprocessing.BoxSpec).
    @property
    def box(self) -> tuple[int, int, int]:
        return self.spec.box

    @property
    def spacing_mm(self) -> float:
        return self.spec.spacing_mm

    @property
    def window_hu(self) -> tuple[float, float]:
        return self.spec.window_hu


@dataclass
class PublicCorpus:
    volumes: NDArray[np.float32]  # (N, 2, X, Y, Z): image and lesion mask in [-1, 1]
    sources: list[CorpusSource]
    left_out: list[str] = field(default_factory=list)  # "name: reason", for the operator

    def __len__(self) -> int:
        return int(self.volumes.shape[0])

    def anatomy_bank(self, cases: int) -> tuple[NDArray[np.uint8], list[CorpusSource]]:
        """The first `cases` boxes' images as a public anatomy bank (shared.foundation.anatomy), and
        the sources they came from, counted as the bank holds them."""
        if not 1 <= cases <= len(self):
            raise CorpusError(
                f"--anatomy-cases must be between 1 and the corpus's {len(self)} boxes, got {cases}"
            )
        sources, left = [], cases
        for source in self.sources:  # volumes are stacked in the order of their sources
            if left == 0:
                break
            taken = min(left, source.cases)
            sources.append(source.model_copy(update={"cases": taken, "lesion_masks": False}))
            left -= taken
        return to_bank(self.volumes[:cases, 0]), sources


def _stack(image: NDArray[np.float32], mask: NDArray[np.uint8] | None) -> NDArray[np.float32]:
    lesion = np.zeros_like(image) if mask is None else mask.astype(np.float32)
    return np.stack([image, lesion * 2.0 - 1.0]).astype(np.float32)


def _phantom_case(request: CorpusRequest, index: int) -> NDArray[np.float32]:
    study = generate_study(
        get_profile(PUBLIC_PROFILE),
        PUBLIC_FINDINGS,
        seed=request.phantom_seed,
        index=index,
        matrix=request.matrix,
    )
    cropped = preprocess(*site_volume(study), request)
    return _stack(cropped.image, cropped.mask)


def nifti_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise CorpusError(f"--nifti {folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(NIFTI_SUFFIXES))
    if not files:
        raise CorpusError(f"--nifti {folder}: no .nii or .nii.gz file in it (DICOM goes with --dicom)")
    return files


def _nifti_case(request: CorpusRequest, path: Path) -> NDArray[np.float32] | str:
    try:
        image = cast(nib.Nifti1Image, nib.load(path))
        hu = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many types for a damaged file
        return f"unreadable NIfTI ({type(exc).__name__})"
    if hu.ndim != 3:
        return f"not one 3D volume (shape {hu.shape})"
    if float(hu.min()) > -500.0 or float(hu.max()) < 100.0:
        return "values do not look like CT in Hounsfield units (no air or no bone)"
    try:
        cropped = preprocess(hu, image.affine.astype(np.float64), None, request)
    except PreprocessingError as exc:
        return str(exc)
    return _stack(cropped.image, None)


def _dicom_cases(request: CorpusRequest, folder: Path) -> tuple[list[NDArray[np.float32]], list[str]]:
    """The boxes of every CT series under `folder` that passes the site's checks, and why each other
    series was left out (named by folder and number, never by a UID)."""
    if not folder.is_dir():
        raise CorpusError(f"--dicom {folder}: not a folder")
    found = scan(folder)
    if not found.series:
        raise CorpusError(f"--dicom {folder}: no DICOM series in it")
    volumes: list[NDArray[np.float32]] = []
    left_out: list[str] = []
    ordered = sorted(found.series, key=lambda s: (s.study_uid, s.series_number, s.series_uid))
    for n, series in enumerate(ordered, 1):
        try:
            hu = load_hu(check_series(series, min_slices=MIN_SLICES))
            cropped = preprocess(hu.hu, hu.affine, None, request)
        except (SeriesRejected, PreprocessingError) as exc:
            left_out.append(f"{folder.name} series {n}: {exc}")
            continue
        volumes.append(_stack(cropped.image, None))
    return volumes, left_out


def build_corpus(request: CorpusRequest, progress: Progress | None = None) -> PublicCorpus:
    """Every public volume as a box, image and mask stacked; nothing is written to disk."""
    say = progress or (lambda _m: None)
    if request.phantom_cases < 0:
        raise CorpusError(f"--phantom-cases must not be negative, got {request.phantom_cases}")
    files = [(folder, path) for folder in request.nifti for path in nifti_files(folder)]
    if request.phantom_cases == 0 and not files and not request.dicom:
        raise CorpusError(
            "the public corpus is empty: give --phantom-cases N, --dicom FOLDER and/or --nifti FOLDER"
        )
    volumes: list[NDArray[np.float32]] = []
    sources: list[CorpusSource] = []
    left_out: list[str] = []
    if request.phantom_cases:
        indices = range(1, request.phantom_cases + 1)
        if request.jobs > 1:
            with ProcessPoolExecutor(request.jobs, mp_context=get_context("forkserver")) as pool:
                for n, volume in enumerate(pool.map(_phantom_case, [request] * len(indices), indices), 1):
                    volumes.append(volume)
                    if n % 10 == 0 or n == len(indices):
                        say(f"public phantom patients: {n}/{len(indices)}")
        else:
            for n in indices:
                volumes.append(_phantom_case(request, n))
                if n % 10 == 0 or n == len(indices):
                    say(f"public phantom patients: {n}/{len(indices)}")
        sources.append(
            CorpusSource(
                kind="phantom-public",
                description=f"phantom profile {PUBLIC_PROFILE}, seed {request.phantom_seed}: lung nodules, "
                "no mediastinal mass",
                cases=request.phantom_cases,
                licence="CC0-1.0",
                lesion_masks=True,
            )
        )
    for folder in request.nifti:
        taken = 0
        for path in nifti_files(folder):
            result = _nifti_case(request, path)
            if isinstance(result, str):
                left_out.append(f"{path.name}: {result}")
                say(f"left out {path.name}: {result}")
                continue
            volumes.append(result)
            taken += 1
        if taken:
            sources.append(
                CorpusSource(
                    kind="nifti",
                    description=f"NIfTI folder {folder.name}",
                    cases=taken,
                    licence=request.nifti_licence,
                    lesion_masks=False,
                )
            )
    for folder in request.dicom:
        boxes, refused = _dicom_cases(request, folder)
        for why in refused:
            say(f"left out {why}")
        volumes += boxes
        left_out += refused
        if boxes:
            sources.append(
                CorpusSource(
                    kind="dicom",
                    description=f"DICOM folder {folder.name}",
                    cases=len(boxes),
                    licence=request.dicom_licence,
                    lesion_masks=False,
                )
            )
    if not volumes:
        raise CorpusError("no public volume could be used: " + "; ".join(left_out))
    return PublicCorpus(np.stack(volumes), sources, left_out)
