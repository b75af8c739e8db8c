"""What an ingest run did, for the hospital: accepted cases, refused series and why.

Everything is named by the site's pseudonyms (case ids, series and file references); no UID,
patient identifier, free-text header value or path appears: only geometry in millimetres and
enumerated codes such as the modality. `site-agent locate REF DICOM_DIR` turns a
reference back into a file name on the hospital's own terminal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class AcceptedCase(BaseModel):
    case_id: str
    version: int
    status: Literal["new", "new-version", "unchanged", "relabelled"]
    label: str | None
    split: str
    shape: tuple[int, int, int]
    spacing_mm: float
    source_spacing_mm: tuple[float, float, float]
    source_slices: int
    hu_min: float
    hu_max: float
    has_mask: bool
    warnings: list[str] = Field(default_factory=list)


class RefusedSeries(BaseModel):
    series_ref: str
    case_id: str  # the study it belongs to
    check: str
    detail: str
    file_ref: str | None = None
    other_file_refs: list[str] = Field(default_factory=list)  # more files that failed the same check


class SkippedSeries(BaseModel):
    series_ref: str
    case_id: str
    reason: str


class UnreadableFile(BaseModel):
    file_ref: str
    reason: str


class IngestReport(BaseModel):
    schema_id: str = "fedsynth.ingest_report/1"
    started_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    finished_at: str | None = None
    files_seen: int = 0
    not_dicom_files: int = 0
    unreadable_files: list[UnreadableFile] = Field(default_factory=list)
    accepted: list[AcceptedCase] = Field(default_factory=list)
    refused: list[RefusedSeries] = Field(default_factory=list)
    skipped: list[SkippedSeries] = Field(default_factory=list)
    labels_without_study: int = 0

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
