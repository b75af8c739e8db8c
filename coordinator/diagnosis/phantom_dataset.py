"""`coordinator phantom-dataset`: phantom patients, preprocessed as a site would, as a dataset folder.

For phantoms only: real patient data never takes this path (it never reaches the coordinator).
Each study is generated in memory, turned into the HU volume and RAS affine a site reads from its
DICOM, and passed through `shared.preprocessing.preprocess`, the very function a site's ingestion
calls. The result is written in the layout of a synthetic set, so real phantom data and synthetic
sets train and evaluate through one path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from shared.classes import DEFAULT_CLASSES
from shared.crop_box import CPU_BOX, CPU_SPACING_MM
from shared.errors import FedsynthError
from shared.phantom import PhantomRequest, generate_study
from shared.phantom.dataset import assign_labels
from shared.phantom.nifti_io import site_volume
from shared.phantom.profiles import get_profile
from shared.preprocessing import preprocess
from shared.schemas import DatasetCard
from shared.synthetic_set import SetItem, write_synthetic_set


@dataclass(frozen=True)
class PhantomDatasetRequest:
    out: Path
    cases: int  # per profile
    seed: int
    profiles: tuple[str, ...] = ("site_a",)
    box: tuple[int, int, int] = CPU_BOX
    spacing_mm: float = CPU_SPACING_MM
    window_hu: tuple[float, float] = (-160.0, 240.0)
    matrix: int = 128  # pixels per row; at 4 mm voxels a 512 matrix adds time, not information
    jobs: int = 1


def _case(request: PhantomDatasetRequest, profile: str, index: int, label: str) -> SetItem:
    study = generate_study(get_profile(profile), label, seed=request.seed, index=index, matrix=request.matrix)
    cropped = preprocess(*site_volume(study), request)
    assert cropped.mask is not None
    return SetItem(
        name=f"{profile}-{request.seed}-{index:05d}",
        image=cropped.image,
        mask=cropped.mask,
        label=label,
        site=profile,
    )


def write_phantom_dataset(
    request: PhantomDatasetRequest, progress: Callable[[str], None] | None = None
) -> Path:
    if request.out.exists():
        raise FedsynthError(f"{request.out} already exists; choose a new folder (nothing was changed)")
    for profile in request.profiles:
        get_profile(profile)  # an unknown profile fails before any work
    tasks = [
        (profile, n, label)
        for profile in request.profiles
        for n, label in enumerate(
            assign_labels(
                PhantomRequest(
                    out=request.out, cases=request.cases, profile=profile, seed=request.seed, balanced=True
                )
            )
        )
    ]
    items: list[SetItem] = []
    if request.jobs > 1:
        with ProcessPoolExecutor(request.jobs, mp_context=get_context("forkserver")) as pool:
            for item in pool.map(_case, *zip(*[(request, *t) for t in tasks], strict=True), chunksize=4):
                items.append(item)
                if progress:
                    progress(f"{len(items)}/{len(tasks)}")
    else:
        for task in tasks:
            items.append(_case(request, *task))
            if progress:
                progress(f"{len(items)}/{len(tasks)}")
    counts = Counter(item.label for item in items)
    lo, hi = request.window_hu
    card = DatasetCard(
        dataset_id=f"phantom-{'-'.join(request.profiles)}-seed{request.seed}".replace("_", "-")[:64],
        version=1,
        description=(
            f"CT phantom patients of profiles {', '.join(request.profiles)} (seed {request.seed}), "
            "no real patient: preprocessed exactly as a site preprocesses its CT"
        ),
        licence="CC0-1.0",
        classes=DEFAULT_CLASSES,
        class_counts={name: counts.get(name, 0) for name in DEFAULT_CLASSES},
        volume_shape=request.box,
        spacing_mm=(request.spacing_mm,) * 3,
        intensity=f"CT window [{lo:g}, {hi:g}] HU scaled to [-1, 1]",
    )
    write_synthetic_set(request.out, items, card, spacing_mm=request.spacing_mm)
    return request.out
