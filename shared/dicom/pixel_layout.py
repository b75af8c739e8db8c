"""Where an uncompressed slice keeps its pixels, learnt while its header is scanned.

The scan already parses every header once. Parsing it again to decode the slice was most of the
cost of ingestion, so the scan also notes the few attributes that say how to read the pixels and
the offset at which the pixel data element starts; decoding is then a seek and one read. Anything
unusual (compressed or big-endian data, colour, odd bit layouts, an element that is not where the
scan left it, a file cut short) has no layout or fails the read, and goes the slow way: pydicom
parses the whole file and decodes or refuses it, naming what is wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from numpy.typing import NDArray

# What the scan reads besides the tags it checks, so that decoding needs no second parse.
PIXEL_TAGS = [
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "PixelPaddingValue",
]
NATIVE_SYNTAXES = (pydicom.uid.ImplicitVRLittleEndian, pydicom.uid.ExplicitVRLittleEndian)
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010), little endian
UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class PixelLayout:
    offset: int  # where the pixel data element (its tag) starts in the file
    explicit_vr: bool
    dtype: str  # numpy dtype of one stored value, little endian
    spare_bits: int  # BitsAllocated - BitsStored: high bits that are not part of the value
    slope: float
    intercept: float
    padding: int | None  # PixelPaddingValue: stored value of pixels outside the reconstruction


@dataclass(frozen=True)
class RescaledPixels:
    stored: NDArray[np.integer]  # rows x columns, as stored (before slope and intercept)
    slope: float
    intercept: float
    padding: int | None
    pixel_bytes: bytes  # the whole value of the pixel data element, for the fingerprint


def stored_dtype(ds: pydicom.Dataset) -> tuple[np.dtype, int] | None:
    """The numpy type of one stored value and the spare high bits, for the layouts read natively."""
    if ds.get("SamplesPerPixel", 1) != 1:
        return None
    allocated, stored = ds.get("BitsAllocated"), ds.get("BitsStored")
    if allocated not in (8, 16, 32) or stored is None or not 0 < stored <= allocated:
        return None
    if ds.get("HighBit", stored - 1) != stored - 1:
        return None
    signed = ds.get("PixelRepresentation", 0) == 1
    return np.dtype(f"<{'i' if signed else 'u'}{allocated // 8}"), allocated - stored


def rescale_of(ds: pydicom.Dataset) -> tuple[float, float, int | None]:
    """(slope, intercept, padding value); raises ValueError or TypeError on values that are not numbers."""
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    padding = ds.get("PixelPaddingValue")
    return slope, intercept, None if padding is None else int(padding)


def layout_of(ds: pydicom.Dataset, position: int) -> PixelLayout | None:
    """The layout of a header read with `stop_before_pixels`, whose file stood at `position`
    afterwards (the start of the pixel data element), or None where only pydicom may decode it."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax not in NATIVE_SYNTAXES:
        return None
    kind = stored_dtype(ds)
    if kind is None:
        return None
    try:
        slope, intercept, padding = rescale_of(ds)
    except (TypeError, ValueError):
        return None
    dtype, spare = kind
    explicit = syntax == pydicom.uid.ExplicitVRLittleEndian
    return PixelLayout(position, explicit, dtype.str, spare, slope, intercept, padding)


def native_values(pixels: NDArray[np.integer], spare_bits: int) -> NDArray[np.integer]:
    """What `pixel_array` gives: bits above BitsStored dropped, signed values sign-extended."""
    if spare_bits == 0:
        return pixels
    if pixels.dtype.kind == "i":  # shift the stored bits to the top and back: the sign bit spreads down
        return (pixels << spare_bits) >> spare_bits
    return pixels & np.array((1 << (pixels.dtype.itemsize * 8 - spare_bits)) - 1, dtype=pixels.dtype)


def _element_length(fh: BinaryIO, explicit_vr: bool) -> int | None:
    """The value length of the pixel data element the file stands at, or None if it is not there."""
    head = fh.read(8)
    if len(head) < 8 or head[:4] != PIXEL_DATA_TAG:
        return None
    if not explicit_vr:
        (length,) = struct.unpack("<I", head[4:8])
    else:
        if head[4:6] not in (b"OB", b"OW"):
            return None
        more = fh.read(4)  # OB and OW: two reserved bytes, then a four-byte length
        if len(more) < 4:
            return None
        (length,) = struct.unpack("<I", more)
    return None if length == UNDEFINED_LENGTH else length


def read_native(path: Path, layout: PixelLayout, rows: int, columns: int) -> RescaledPixels | None:
    """The slice's stored values, read at its layout's offset, or None if the file is not as its
    header promised (then pydicom reads it and says what is wrong)."""
    dtype = np.dtype(layout.dtype)
    needed = rows * columns * dtype.itemsize
    with open(path, "rb") as fh:
        fh.seek(layout.offset)
        length = _element_length(fh, layout.explicit_vr)
        if length is None or length < needed:
            return None
        data = fh.read(length)
    if len(data) < length:
        return None  # cut short
    pixels = np.frombuffer(data, dtype=dtype, count=rows * columns).reshape(rows, columns)
    stored = native_values(pixels, layout.spare_bits)
    return RescaledPixels(stored, layout.slope, layout.intercept, layout.padding, data)
