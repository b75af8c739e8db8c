"""Compressed transfer syntaxes hospitals send decode to exactly the same Hounsfield units."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from shared.dicom.checks import check_series
from shared.dicom.scan import scan
from shared.dicom.volume import load_hu
from shared.phantom import PhantomRequest, read_labels, write_phantom


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plain") / "export"
    write_phantom(PhantomRequest(out=out, cases=1, profile="site_b", seed=5, matrix=64, slice_mm=8.0))
    return out / read_labels(out)[0]["folder"]


def _hu(folder: Path) -> np.ndarray:
    found = scan(folder)
    return load_hu(check_series(found.series[0], min_slices=10)).hu


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=lambda s: s.name)
def test_compressed_series_decode_to_the_same_hu(
    plain: Path, tmp_path: Path, syntax: pydicom.uid.UID
) -> None:
    folder = tmp_path / "compressed"
    shutil.copytree(plain, folder)
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(path)
    assert pydicom.dcmread(next(folder.iterdir())).file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(_hu(folder), _hu(plain))


@pytest.mark.parametrize("signed", [False, True])
def test_uncompressed_pixels_read_from_their_bytes_are_what_pydicom_decodes(
    plain: Path, signed: bool
) -> None:
    from shared.dicom.volume import _native_pixels

    ds = pydicom.dcmread(next(p for p in sorted(plain.iterdir()) if p.is_file()))
    ds.BitsStored, ds.HighBit = 12, 11  # 12 of 16 bits, as most CT is stored
    pixels = np.frombuffer(ds.PixelData, dtype="<u2").reshape(ds.Rows, ds.Columns).copy()
    pixels[0, :3] = (0xF123, 0x0800, 0x07FF)  # bits above BitsStored set; 12-bit sign bit set
    ds.PixelData, ds.PixelRepresentation = pixels.tobytes(), int(signed)
    native = _native_pixels(ds, ds.Rows, ds.Columns)
    assert native is not None and native.dtype == ds.pixel_array.dtype
    assert np.array_equal(native, ds.pixel_array)
