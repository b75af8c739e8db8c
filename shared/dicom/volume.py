"""Decode a checked series into a volume of Hounsfield units with its RAS affine.

Stored values become HU through RescaleSlope/Intercept; padding outside the reconstruction circle
(PixelPaddingValue) becomes air; everything is clipped to the CT range. The fingerprint covers the
instances and their pixel bytes, so re-ingesting an unchanged series is recognised without
preprocessing it again, and any change to a single pixel makes a new version.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from numpy.typing import NDArray

from shared.dicom.checks import Geometry, SeriesRejected
from shared.dicom.pixel_layout import (
    NATIVE_SYNTAXES,
    RescaledPixels,
    native_values,
    read_native,
    rescale_of,
    stored_dtype,
)
from shared.leftovers import remove_leftovers

HU_MIN, HU_MAX = -1024.0, 3071.0
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
VOLUME_PREFIX = "fedsynth-volume-"


@dataclass
class HuVolume:
    hu: NDArray[np.float32]  # [column, row, slice]: voxel (i, j, k) is column i, row j, slice k
    affine: NDArray[np.float64]  # voxel -> RAS millimetres
    spacing: tuple[float, float, float]  # (between columns, between rows, between slices)
    fingerprint: str

    @property
    def hu_range(self) -> tuple[float, float]:
        return float(self.hu.min()), float(self.hu.max())


def lps_affine(geometry: Geometry) -> NDArray[np.float64]:
    """Voxel (column, row, slice) -> LPS millimetres, from positions and orientation only."""
    row_spacing, column_spacing = geometry.pixel_spacing
    affine = np.eye(4)
    affine[:3, 0] = geometry.row_direction * column_spacing  # along a row: next column
    affine[:3, 1] = geometry.column_direction * row_spacing  # down a column: next row
    affine[:3, 2] = geometry.normal * geometry.slice_spacing
    affine[:3, 3] = geometry.origin
    return affine


def decode_slice(geometry: Geometry, index: int, out: NDArray[np.float32]) -> bytes:
    """Decode slice `index` into `out` (rows x columns) as HU; return the SHA-256 of its pixel bytes."""
    instance = geometry.instances[index]
    pixels = None
    if instance.pixels is not None:  # the common case: one seek and one read, no second parse
        pixels = read_native(instance.path, instance.pixels, geometry.rows, geometry.columns)
    if pixels is None:
        pixels = _parsed_pixels(geometry, index)
    raw = pixels.stored
    if raw.shape != (geometry.rows, geometry.columns):
        raise SeriesRejected(
            "pixel-data",
            f"pixel data has shape {raw.shape}, header says {geometry.rows}x{geometry.columns}",
            instance,
        )
    np.multiply(raw, pixels.slope, out=out, casting="unsafe")
    out += pixels.intercept
    if pixels.padding is not None:
        out[raw == pixels.padding] = HU_MIN
    np.clip(out, HU_MIN, HU_MAX, out=out)
    return hashlib.sha256(pixels.pixel_bytes).digest()


def _parsed_pixels(geometry: Geometry, index: int) -> RescaledPixels:
    """The slow way, for what `read_native` does not read: pydicom parses the whole file, then
    decodes it (or refuses it, naming what is wrong)."""
    instance = geometry.instances[index]
    ds = None
    try:
        ds = pydicom.dcmread(instance.path)
        raw = _native_pixels(ds, geometry.rows, geometry.columns)
        if raw is None:
            raw = ds.pixel_array
        slope, intercept, padding = rescale_of(ds)
        return RescaledPixels(raw, slope, intercept, padding, ds.PixelData)
    except Exception as exc:  # any decoder failure is this file's fault, not the run's
        raise SeriesRejected("pixel-data", _why_undecodable(ds, geometry, exc), instance) from None


def _native_pixels(ds: pydicom.Dataset, rows: int, columns: int) -> NDArray[np.integer] | None:
    """The pixels of an uncompressed little-endian slice, read straight from its bytes: what
    `pixel_array` gives at a third of its cost per slice. None for anything else (compressed,
    big-endian, colour, odd bit layouts, too short), which `pixel_array` decodes or refuses."""
    if ds.file_meta.get("TransferSyntaxUID") not in NATIVE_SYNTAXES or "PixelData" not in ds:
        return None
    kind = stored_dtype(ds)
    if kind is None:
        return None
    dtype, spare = kind
    data = ds.PixelData
    if len(data) < rows * columns * dtype.itemsize:
        return None
    pixels = np.frombuffer(data, dtype=dtype, count=rows * columns).reshape(rows, columns)
    return native_values(pixels, spare)


def _why_undecodable(ds: pydicom.Dataset | None, geometry: Geometry, exc: Exception) -> str:
    """What is wrong with a file whose pixels cannot be decoded, in words that name no value of
    it: a truncated file (the commonest case, a copy cut short) says how much of it is there."""
    if ds is None:
        return f"the file cannot be read to its end ({type(exc).__name__}): truncated or damaged"
    if "PixelData" not in ds:
        return "the file has no pixel data"
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or not syntax.is_compressed:
        bits = int(ds.get("BitsAllocated", 16) or 16)
        expected = geometry.rows * geometry.columns * bits // 8
        held = len(ds.PixelData)
        if held < expected:
            return f"the file is truncated: it holds {held} of the {expected} bytes of pixel data"
    return f"pixel data cannot be decoded ({type(exc).__name__})"


# What a slice that failed sends back from a worker: (index, check, detail). An exception with
# extra fields does not survive the trip back from a worker process.
Failure = tuple[int, str, str]


def _decode_range(
    geometry: Geometry, indices: range, shared_path: str | None, out: NDArray[np.float32] | None
) -> tuple[list[bytes], list[Failure]]:
    """Decode `indices` into `out` or into the memory-mapped file `shared_path`: the pixel digests
    of the slices decoded, and every slice that failed (so that a report names all the broken
    files of a series, not only the first)."""
    shape = (len(geometry.instances), geometry.rows, geometry.columns)
    target = out if shared_path is None else np.memmap(shared_path, dtype=np.float32, mode="r+", shape=shape)
    digests: list[bytes] = []
    failures: list[Failure] = []
    for index in indices:
        try:
            digests.append(decode_slice(geometry, index, target[index]))  # type: ignore[index]
        except SeriesRejected as exc:
            failures.append((index, exc.check, exc.detail))
    if isinstance(target, np.memmap):
        target.flush()
    return digests, failures


def _shared_folder(size: int) -> Path | None:
    """Where workers can write a volume of `size` bytes: RAM (/dev/shm) if it has room, else disk.

    Containers often give /dev/shm only 64 MB, less than one 512 x 512 series; writing past that
    would kill the workers, so the free space is checked first.
    """
    for folder in (Path("/dev/shm"), Path(tempfile.gettempdir())):
        if folder.is_dir() and shutil.disk_usage(folder).free > 2 * size:
            return folder
    return None


def _shared_volume(shape: tuple[int, int, int], folder: Path) -> tuple[str, NDArray[np.float32]]:
    """A volume the workers can write to: a file mapped here and unlinked once the work is done."""
    remove_leftovers(folder, VOLUME_PREFIX)  # volumes of runs killed mid-series
    fd, path = tempfile.mkstemp(prefix=f"{VOLUME_PREFIX}{os.getpid()}-", dir=folder)
    os.close(fd)
    volume = np.memmap(path, dtype=np.float32, mode="w+", shape=shape)
    return path, volume


def load_hu(geometry: Geometry) -> HuVolume:
    from shared.dicom.workers import chunks, cores, run_with_fallback

    count = len(geometry.instances)
    shape = (count, geometry.rows, geometry.columns)
    slices: NDArray[np.float32] = np.empty(0, dtype=np.float32)

    def local() -> list[tuple[list[bytes], list[Failure]]]:
        nonlocal slices
        slices = np.empty(shape, dtype=np.float32)
        return [_decode_range(geometry, range(count), None, slices)]

    def pooled(pool: ProcessPoolExecutor) -> list[tuple[list[bytes], list[Failure]]]:
        # Workers decode straight into one shared map; nothing is copied back.
        nonlocal slices
        folder = _shared_folder(int(np.prod(shape)) * 4)
        if folder is None:
            return local()
        path, slices = _shared_volume(shape, folder)
        try:
            parts = chunks(count, cores())
            return list(
                pool.map(
                    _decode_range, [geometry] * len(parts), parts, [path] * len(parts), [None] * len(parts)
                )
            )
        finally:
            os.unlink(path)  # the mapping stays valid; the memory goes when the array does

    outcomes = run_with_fallback(pooled, local, count)
    digests = [digest for decoded, _ in outcomes for digest in decoded]
    failures = [failure for _, failed in outcomes for failure in failed]
    if failures:
        index, check, detail = failures[0]
        others = tuple(geometry.instances[i] for i, _, _ in failures[1:])
        if others:
            detail += f"; {len(others)} more file(s) of the series fail the same way"
        raise SeriesRejected(check, detail, geometry.instances[index], others)
    digest = hashlib.sha256()
    for instance, pixel_digest in zip(geometry.instances, digests, strict=True):
        digest.update(instance.sop_uid.encode())
        digest.update(pixel_digest)
    row_spacing, column_spacing = geometry.pixel_spacing
    return HuVolume(
        # Slice-major in memory; the (column, row, slice) volume is a transposed view, never a copy.
        hu=slices.transpose(2, 1, 0),
        affine=LPS_TO_RAS @ lps_affine(geometry),
        spacing=(column_spacing, row_spacing, geometry.slice_spacing),
        fingerprint=digest.hexdigest(),
    )
