"""Walk a DICOM export, read headers only, and group the files by study and series.

Pixel data is not touched here: a thousand-study export is sorted out in the time it takes to
read its headers, and a file with broken pixel data still gets its series named in the report.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from shared.dicom.pixel_layout import PIXEL_TAGS, PixelLayout, layout_of

# Tags the checks and the series choice need; reading only these is several times faster.
HEADER_TAGS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "PatientID",
    "SeriesInstanceUID",
    "Modality",
    "InstanceNumber",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
    "SliceThickness",
    "ConvolutionKernel",
    "SeriesNumber",
    "GantryDetectorTilt",
    "ImageType",
    "NumberOfFrames",
]
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


@dataclass(frozen=True)
class Instance:
    path: Path
    relative: str  # path inside the export, for pseudonymous file references only
    sop_class: str
    sop_uid: str
    study_uid: str
    series_uid: str
    patient_id: str  # only ever turned into a keyed pseudonym: the privacy unit is the patient
    modality: str
    instance_number: int | None
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    rows: int | None
    columns: int | None
    kernel: str
    series_number: int | None
    gantry_tilt: float
    frames: int
    pixels: PixelLayout | None = None  # where its pixels lie, if they can be read without pydicom


@dataclass
class Series:
    study_uid: str
    series_uid: str
    instances: list[Instance] = field(default_factory=list)

    @property
    def patient_id(self) -> str:
        return self.instances[0].patient_id if self.instances else ""

    @property
    def kernel(self) -> str:
        return self.instances[0].kernel if self.instances else ""

    @property
    def series_number(self) -> int:
        number = self.instances[0].series_number if self.instances else None
        return number if number is not None else 1_000_000


@dataclass
class ScanResult:
    series: list[Series]
    not_dicom: list[str]  # relative paths of files that are not DICOM at all
    unreadable: list[tuple[str, str]]  # (relative path, why) of DICOM files whose header is broken


def _floats(value: object, count: int) -> tuple[float, ...] | None:
    try:
        numbers = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def read_instance(path: Path, root: Path) -> Instance:
    with open(path, "rb") as fh:
        ds = pydicom.dcmread(fh, stop_before_pixels=True, specific_tags=HEADER_TAGS + PIXEL_TAGS)
        pixels_at = fh.tell()  # pydicom stops at the pixel data element's tag
    kernel = ds.get("ConvolutionKernel", "")
    if not isinstance(kernel, str):  # multi-valued in some vendors' files
        kernel = "\\".join(str(k) for k in kernel)
    number = ds.get("InstanceNumber")
    series_number = ds.get("SeriesNumber")
    try:
        tilt = float(ds.get("GantryDetectorTilt", 0.0) or 0.0)
    except (TypeError, ValueError):
        tilt = 0.0
    position = _floats(ds.get("ImagePositionPatient"), 3)
    spacing = _floats(ds.get("PixelSpacing"), 2)
    return Instance(
        path=path,
        relative=path.relative_to(root).as_posix(),
        sop_class=str(ds.get("SOPClassUID", "")),
        sop_uid=str(ds.get("SOPInstanceUID", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        patient_id=str(ds.get("PatientID", "") or "").strip(),
        modality=str(ds.get("Modality", "")),
        instance_number=int(number) if number not in (None, "") else None,
        position=(position[0], position[1], position[2]) if position else None,
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        pixel_spacing=(spacing[0], spacing[1]) if spacing else None,
        rows=int(ds.Rows) if "Rows" in ds else None,
        columns=int(ds.Columns) if "Columns" in ds else None,
        kernel=kernel.strip(),
        series_number=int(series_number) if series_number not in (None, "") else None,
        gantry_tilt=tilt,
        frames=int(ds.get("NumberOfFrames", 1) or 1),
        pixels=layout_of(ds, pixels_at),
    )


def _read_all(paths: list[Path], root: Path) -> list[Instance | str | tuple[str, str]]:
    """Each file as an Instance, or its relative path (not DICOM), or (relative path, why) (broken)."""
    results: list[Instance | str | tuple[str, str]] = []
    for path in paths:
        relative = path.relative_to(root).as_posix()
        try:
            instance = read_instance(path, root)
        except InvalidDicomError:
            results.append(relative)
            continue
        except Exception as exc:  # a broken header must never stop the scan of the others
            results.append((relative, type(exc).__name__))
            continue
        results.append(
            relative if instance.sop_class == DICOMDIR_CLASS or not instance.series_uid else instance
        )
    return results


def scan(root: Path) -> ScanResult:
    """Every file under `root`, grouped into series; nothing in it is trusted yet."""
    from shared.dicom.workers import chunks, cores, run_with_fallback

    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    parts = chunks(len(files), 4 * cores()) if files else []

    def pooled(pool: ProcessPoolExecutor) -> list[Instance | str | tuple[str, str]]:
        batches = pool.map(_read_all, [files[c.start : c.stop] for c in parts], [root] * len(parts))
        return [result for batch in batches for result in batch]

    results = run_with_fallback(pooled, lambda: _read_all(files, root), len(files))
    groups: dict[tuple[str, str], Series] = {}
    not_dicom: list[str] = []
    unreadable: list[tuple[str, str]] = []
    for result in results:
        if isinstance(result, str):
            not_dicom.append(result)
        elif isinstance(result, tuple):
            unreadable.append(result)
        else:
            key = (result.study_uid, result.series_uid)
            groups.setdefault(key, Series(result.study_uid, result.series_uid)).instances.append(result)
    return ScanResult(list(groups.values()), not_dicom, unreadable)
