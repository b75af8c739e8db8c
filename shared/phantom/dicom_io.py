"""Writes phantom series as real DICOM files, one per slice, the way scanners export them.

CT Image Storage objects with the Patient, Study, Series, Frame of Reference, Equipment, Image
Plane, Image Pixel, CT Image and SOP Common modules filled in; pixel data stored as the vendor
would (signed, or unsigned with intercept -1024), vendor-style file names, optionally written in an
order unrelated to slice position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

from shared.phantom.profiles import ScannerProfile
from shared.phantom.study import Identity, Study, make_uid

Vec3 = tuple[float, float, float]
AXIAL: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass
class SeriesSpec:
    """Everything that differs between the series the phantom writes (normal and defective)."""

    hu: NDArray[np.int16]  # [slice, row, column], slice 0 = feet
    positions: list[Vec3]  # ImagePositionPatient of each slice (same order as `hu`)
    pixel_spacing: float
    slice_thickness: float
    series_uid: str
    series_number: int = 2
    description: str = "CHEST MEDIASTINUM"
    kernel: str = ""
    orientation: tuple[float, ...] = AXIAL
    gantry_tilt: float = 0.0
    modality: str = "CT"
    seed_parts: tuple[object, ...] = field(default_factory=tuple)  # makes SOP Instance UIDs reproducible


def spec_for_study(study: Study, **overrides: object) -> SeriesSpec:
    g = study.grid
    positions = [(g.origin[0], g.origin[1], float(z)) for z in g.axis(2)]
    spec = SeriesSpec(
        hu=study.hu,
        positions=positions,
        pixel_spacing=g.spacing[0],
        slice_thickness=g.spacing[2],
        series_uid=study.identity.series_uid,
        kernel=study.profile.kernel,
        seed_parts=(study.profile.name, study.seed, study.index),
    )
    for key, value in overrides.items():
        setattr(spec, key, value)
    return spec


def file_name(naming: str, counter: int, series_number: int, sop_uid: str) -> str:
    names = {
        "uid": f"{sop_uid}.dcm",
        "ge": f"IM{counter:05d}",
        "philips": f"IM_{counter:04d}",
        "numbered": f"{counter:08d}.dcm",
        "canon": f"CT{series_number:03d}_{counter:05d}.DCM",
    }
    return names[naming]


def write_series(
    folder: Path,
    spec: SeriesSpec,
    identity: Identity,
    profile: ScannerProfile,
    *,
    contrast: bool,
    shuffle_rng: np.random.Generator | None = None,
    first_counter: int = 1,
) -> list[Path]:
    """Write one file per slice into `folder`; instance 1 is the most superior slice, as scanners do."""
    folder.mkdir(parents=True, exist_ok=True)
    count = spec.hu.shape[0]
    order = list(range(count - 1, -1, -1))  # instance order: head first
    counters = list(range(first_counter, first_counter + count))
    if shuffle_rng is not None:
        shuffle_rng.shuffle(counters)
    signed = profile.signed_pixels
    intercept = 0.0 if signed else -1024.0
    ds = _base_dataset(spec, identity, profile, contrast=contrast, signed=signed, intercept=intercept)
    written: list[Path] = []
    for n, k in enumerate(order):
        sop_uid = make_uid("instance", *spec.seed_parts, spec.series_uid, n)
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = n + 1
        position = spec.positions[k]
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.SliceLocation = _ds(position[2])
        pixels = spec.hu[k].astype(np.int32) - int(intercept)
        ds.PixelData = pixels.astype(np.int16 if signed else np.uint16).tobytes()
        path = folder / file_name(profile.file_naming, counters[n], spec.series_number, sop_uid)
        ds.save_as(path, enforce_file_format=True)
        written.append(path)
    return written


def _ds(value: float) -> str:
    """A DICOM decimal string of at most 16 characters."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.6g}"


def _base_dataset(
    spec: SeriesSpec,
    identity: Identity,
    profile: ScannerProfile,
    *,
    contrast: bool,
    signed: bool,
    intercept: float,
) -> Dataset:
    is_ct = spec.modality == "CT"
    sop_class = CTImageStorage if is_ct else MRImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = identity.study_date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "101500"
    ds.AccessionNumber = identity.accession
    ds.Modality = spec.modality
    ds.Manufacturer = profile.manufacturer
    ds.InstitutionName = "FEDSYNTH PHANTOM HOSPITAL"
    ds.ReferringPhysicianName = "PHANTOM^REFERRER"
    ds.StudyDescription = "CT CHEST WITH CONTRAST" if contrast else "CT CHEST"
    ds.SeriesDescription = spec.description
    ds.ManufacturerModelName = profile.model
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.birth_date
    ds.PatientSex = identity.patient_sex
    ds.BodyPartExamined = "CHEST"
    ds.PatientAge = identity.patient_age
    ds.PatientWeight = identity.patient_weight
    ds.SliceThickness = _ds(spec.slice_thickness)
    ds.SpacingBetweenSlices = _ds(spec.slice_thickness)
    ds.ProtocolName = "CHEST ROUTINE"
    ds.SoftwareVersions = "FEDSYNTH-PHANTOM"
    ds.ReconstructionDiameter = _ds(spec.pixel_spacing * spec.hu.shape[2])
    ds.PatientPosition = "HFS"
    if is_ct:
        ds.KVP = _ds(profile.kvp)
        ds.ConvolutionKernel = spec.kernel or profile.kernel
        ds.GantryDetectorTilt = _ds(spec.gantry_tilt)
        ds.TableHeight = "160"
        ds.XRayTubeCurrent = 200
        ds.CTDIvol = 8.5
        ds.RescaleIntercept = _ds(intercept)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        if contrast:
            ds.ContrastBolusAgent = "IODINATED CONTRAST"
    else:
        ds.MagneticFieldStrength = "1.5"
        ds.RepetitionTime = "500"
        ds.EchoTime = "15"
    ds.StudyInstanceUID = identity.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = spec.series_number
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = identity.frame_uid
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = [_ds(v) for v in spec.orientation]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(spec.hu.shape[1]), int(spec.hu.shape[2])
    ds.PixelSpacing = [_ds(spec.pixel_spacing), _ds(spec.pixel_spacing)]
    ds.BitsAllocated = 16
    ds.BitsStored = 16 if signed else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if profile.padding_hu is not None and signed:
        ds.add_new(0x00280120, "SS", int(profile.padding_hu))  # PixelPaddingValue
    return ds
