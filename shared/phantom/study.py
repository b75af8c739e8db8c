"""One phantom patient: anatomy, lesion, scanner, identity. Pure computation, no files.

Every random draw comes from a generator seeded by (seed, profile, case index), so the same
arguments give the same patient, voxel for voxel, and any other seed gives a different one.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydicom.uid import UID, generate_uid

from shared.phantom.anatomy import Body, Landmarks, paint_anatomy
from shared.phantom.canvas import Canvas, Tissue
from shared.phantom.grid import Grid
from shared.phantom.lesions import LesionInfo, paint_lesion
from shared.phantom.profiles import PhantomError, ScannerProfile
from shared.phantom.scanner import NATIVE_MATRIX, acquire, native_pixel_spacing


@dataclass(frozen=True)
class Identity:
    """Obviously fake patient and study identity; UIDs are new and derived from the seed."""

    patient_name: str
    patient_id: str
    patient_sex: str
    birth_date: str
    patient_age: str
    patient_weight: str
    study_date: str
    accession: str
    study_uid: str
    series_uid: str
    frame_uid: str
    folder: str


@dataclass
class Study:
    profile: ScannerProfile
    label: str
    index: int
    seed: int
    grid: Grid
    body: Body
    landmarks: Landmarks
    lesion: LesionInfo
    hu: NDArray[np.int16]  # what the scanner stores, in HU, [slice, row, column], slice 0 = feet
    tissue: NDArray[np.uint8]  # ground truth before the scanner
    identity: Identity

    @property
    def mask(self) -> NDArray[np.uint8]:
        return (self.tissue == Tissue.LESION).astype(np.uint8)


def case_rng(seed: int, profile: str, index: int, purpose: str = "patient") -> np.random.Generator:
    key = [seed & 0xFFFFFFFF, zlib.crc32(profile.encode()), index, zlib.crc32(purpose.encode())]
    return np.random.default_rng(np.random.SeedSequence(key))


def make_uid(*parts: object) -> UID:
    """A new UID under pydicom's root, reproducible from `parts` (so the same seed gives the same UIDs)."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def make_identity(profile: ScannerProfile, seed: int, index: int, rng: np.random.Generator) -> Identity:
    year = int(rng.integers(1940, 2005))
    return Identity(
        patient_name=f"PHANTOM^{profile.name.upper()}^CASE{index:04d}",
        patient_id=f"FSPH-{profile.name}-{seed}-{index:04d}",
        patient_sex=str(rng.choice(["F", "M"])),
        birth_date=f"{year}0101",
        patient_age=f"{2026 - year:03d}Y",
        patient_weight=str(int(rng.integers(45, 110))),
        study_date=f"2026{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}",
        accession=f"ACC{seed % 100000:05d}{index:05d}",
        study_uid=make_uid("study", profile.name, seed, index),
        series_uid=make_uid("series", profile.name, seed, index),
        frame_uid=make_uid("frame", profile.name, seed, index),
        folder=f"study_{index:04d}",
    )


def generate_study(
    profile: ScannerProfile,
    label: str,
    *,
    seed: int,
    index: int,
    matrix: int = NATIVE_MATRIX,
    slice_mm: float | None = None,
) -> Study:
    """Draw, paint and scan one patient of class `label`.

    `matrix` and `slice_mm` shrink the study for demos and tests: the field of view stays the
    same, pixels and slices get larger, and noise is scaled to the larger voxels.
    """
    if not 32 <= matrix <= 1024:
        raise PhantomError(f"matrix must be between 32 and 1024 pixels, got {matrix}")
    slice_spacing = profile.slice_spacing_mm if slice_mm is None else slice_mm
    if not 0.5 <= slice_spacing <= 10.0:
        raise PhantomError(f"slice spacing must be between 0.5 and 10 mm, got {slice_spacing}")
    rng = case_rng(seed, profile.name, index)
    body = Body.draw(rng, profile.patient_size, profile.contrast_rate)
    native = native_pixel_spacing(profile, body)
    # Rounded so that DICOM's decimal strings hold the geometry exactly.
    pixel = round(native * NATIVE_MATRIX / matrix, 4)
    bottom, top = body.scan_range
    bottom = round(bottom, 2)
    slices = int(np.floor((top - bottom) / slice_spacing)) + 1
    half = round((matrix - 1) / 2.0 * pixel, 3)
    grid = Grid((slices, matrix, matrix), (-half, -half, bottom), (pixel, pixel, slice_spacing))

    canvas = Canvas(grid)
    drawn: list[LesionInfo] = []
    landmarks = paint_anatomy(
        canvas, rng, body, lambda lm: drawn.append(paint_lesion(canvas, rng, body, lm, label))
    )
    scanner_rng = case_rng(seed, profile.name, index, "scanner")
    hu = acquire(canvas.hu, grid, profile, body, scanner_rng, native)
    identity = make_identity(profile, seed, index, case_rng(seed, profile.name, index, "identity"))
    return Study(profile, label, index, seed, grid, body, landmarks, drawn[0], hu, canvas.tissue, identity)
