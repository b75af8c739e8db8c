"""Compressed transfer syntaxes hospitals send decode to exactly the same Hounsfield units."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from shared.dicom.checks import SeriesRejected, check_series
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


def _one_slice(folder: Path) -> tuple[np.ndarray, str]:
    volume = load_hu(check_series(scan(folder).series[0], min_slices=10))
    return volume.hu, volume.fingerprint


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("syntax", [pydicom.uid.ImplicitVRLittleEndian, pydicom.uid.ExplicitVRLittleEndian])
def test_pixels_read_at_the_offset_the_scan_noted_are_what_pydicom_decodes(
    plain: Path, tmp_path: Path, syntax: pydicom.uid.UID, signed: bool
) -> None:
    folder = tmp_path / "series"
    shutil.copytree(plain, folder)
    for n, path in enumerate(sorted(folder.iterdir())):
        ds = pydicom.dcmread(path)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, int(signed)
        pixels = np.frombuffer(ds.PixelData, dtype="<u2").reshape(ds.Rows, ds.Columns).copy()
        pixels[0, :3] = (0xF123, 0x0800, 0x07FF)  # bits above BitsStored set; 12-bit sign bit set
        ds.PixelData = pixels.tobytes()
        ds.RescaleSlope, ds.RescaleIntercept, ds.PixelPaddingValue = 1, -1024, 0x07FF
        if n == 3:
            ds.RescaleSlope = 2  # one slice with its own slope: each slice's own header counts
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(path, enforce_file_format=True)
    found = scan(folder).series[0]
    assert all(
        i.pixels is not None and i.pixels.explicit_vr != syntax.is_implicit_VR for i in found.instances
    )
    fast, fast_fingerprint = _one_slice(folder)
    # The same series with its layouts taken away: pydicom parses every file again.
    geometry = check_series(found, min_slices=10)
    geometry.instances[:] = [replace(i, pixels=None) for i in geometry.instances]
    slow = load_hu(geometry)
    assert np.array_equal(fast, slow.hu) and fast_fingerprint == slow.fingerprint
    assert fast.min() == -1024.0  # the padding value became air


def test_a_file_changed_after_the_scan_is_read_by_pydicom_and_refused_by_name(
    plain: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "series"
    shutil.copytree(plain, folder)
    found = scan(folder).series[0]
    geometry = check_series(found, min_slices=10)
    victim = geometry.instances[4].path
    victim.write_bytes(victim.read_bytes()[:-1000])  # cut short between the scan and the decode
    with pytest.raises(SeriesRejected) as refused:
        load_hu(geometry)
    assert refused.value.check == "pixel-data" and refused.value.instance.path == victim
    assert "truncated" in refused.value.detail


def test_a_file_removed_after_the_scan_is_refused_by_name(plain: Path, tmp_path: Path) -> None:
    folder = tmp_path / "series"
    shutil.copytree(plain, folder)
    geometry = check_series(scan(folder).series[0], min_slices=10)
    victim = geometry.instances[2].path
    victim.unlink()
    with pytest.raises(SeriesRejected) as refused:
        load_hu(geometry)
    assert refused.value.check == "pixel-data" and refused.value.instance.path == victim
