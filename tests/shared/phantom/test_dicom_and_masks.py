"""The written series are valid CT objects, read identically by pydicom and ITK, with aligned masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import CTImageStorage

from shared.classes import DEFAULT_CLASSES
from shared.phantom import PhantomSummary, read_labels
from shared.phantom.nifti_io import read_mask

REQUIRED = (
    "PatientName",
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "Modality",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    "Rows",
    "Columns",
    "RescaleIntercept",
    "RescaleSlope",
    "InstanceNumber",
    "BitsAllocated",
    "PixelRepresentation",
    "Manufacturer",
    "ConvolutionKernel",
    "KVP",
)


def _itk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def test_every_study_is_a_valid_ct_series(phantom_site: PhantomSummary) -> None:
    for row in read_labels(phantom_site.out):
        files = sorted((phantom_site.out / row["folder"]).iterdir())
        assert len(files) == int(row["slices"])
        datasets = [pydicom.dcmread(f) for f in files]
        sop_uids = {d.SOPInstanceUID for d in datasets}
        assert len(sop_uids) == len(datasets), "SOP Instance UIDs must be unique"
        instance_numbers = sorted(int(d.InstanceNumber) for d in datasets)
        assert instance_numbers == list(range(1, len(datasets) + 1))
        for d in datasets:
            assert d.file_meta.MediaStorageSOPClassUID == CTImageStorage == d.SOPClassUID
            assert d.Modality == "CT"
            assert d.StudyInstanceUID == row["study_uid"]
            for keyword in REQUIRED:
                assert keyword in d, f"{keyword} missing"
            assert d.PatientName.family_name == "PHANTOM"  # obviously fake identity
        z = sorted(float(d.ImagePositionPatient[2]) for d in datasets)
        assert np.allclose(np.diff(z), float(row["slice_spacing_mm"]), atol=1e-3)


def test_pydicom_and_itk_read_identical_geometry_and_voxels(phantom_site: PhantomSummary) -> None:
    for row in read_labels(phantom_site.out):
        folder = phantom_site.out / row["folder"]
        image = _itk_series(folder)
        datasets = sorted(
            (pydicom.dcmread(f) for f in folder.iterdir()), key=lambda d: float(d.ImagePositionPatient[2])
        )
        first = datasets[0]
        assert image.GetSize() == (first.Columns, first.Rows, len(datasets))
        assert np.allclose(image.GetOrigin(), [float(v) for v in first.ImagePositionPatient], atol=1e-3)
        assert np.allclose(image.GetSpacing()[:2], [float(v) for v in first.PixelSpacing], atol=1e-4)
        assert np.allclose(image.GetDirection(), np.eye(3).ravel(), atol=1e-6)
        volume = np.stack(
            [d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets]
        )
        assert np.array_equal(sitk.GetArrayFromImage(image).astype(np.float64), volume)


def test_masks_are_aligned_with_their_series_and_cover_the_lesion(phantom_site: PhantomSummary) -> None:
    for row in read_labels(phantom_site.out):
        image = _itk_series(phantom_site.out / row["folder"])
        mask_image = sitk.ReadImage(str(phantom_site.out / row["mask"]))
        assert mask_image.GetSize() == image.GetSize()
        assert np.allclose(mask_image.GetOrigin(), image.GetOrigin(), atol=1e-3)
        assert np.allclose(mask_image.GetSpacing(), image.GetSpacing(), atol=1e-4)
        assert np.allclose(mask_image.GetDirection(), image.GetDirection(), atol=1e-6)
        mask = sitk.GetArrayFromImage(mask_image).astype(bool)
        hu = sitk.GetArrayFromImage(image)
        nib_mask, _ = read_mask(phantom_site.out / row["mask"])
        assert np.array_equal(nib_mask.astype(bool), mask)  # nibabel and ITK agree on the voxel order
        if row["label"] == "normal":
            assert not mask.any()
            continue
        assert mask.any()
        # A lesion is soft tissue, fluid, fat or calcification: never lung or air. Shifting the
        # mask off the lesion by a few centimetres must change what it covers.
        inside = float(np.median(hu[mask]))
        assert -150 < inside < 400, f"{row['label']}: median {inside} HU inside the mask"
        shifted = np.roll(mask, shift=int(40 / image.GetSpacing()[0]), axis=2)
        assert abs(float(np.median(hu[shifted])) - inside) > 20 or float(np.mean(hu[shifted] < -500)) > 0.2


def test_labels_csv_has_what_ingestion_needs(phantom_site: PhantomSummary) -> None:
    rows = read_labels(phantom_site.out)
    assert len(rows) == 6
    assert {r["label"] for r in rows} == set(DEFAULT_CLASSES)
    assert {"study_uid", "label", "profile"} <= set(rows[0])
    assert all(r["profile"] == "site_b" for r in rows)
    assert len({r["study_uid"] for r in rows}) == 6


def test_previews_exist_for_each_class(phantom_site: PhantomSummary) -> None:
    names = sorted(p.stem for p in phantom_site.previews)
    assert names == sorted(DEFAULT_CLASSES)
    for path in phantom_site.previews:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000  # a real picture, not an empty canvas
