"""The site's private case store: one file per case version plus an SQLite index.

    store/
      .site-secret          the pseudonym key (never leaves the site)
      index.sqlite          one row per case version: label, split, shapes, fingerprint
      cases/<case>.v<N>.npz the preprocessed box (and mask), written atomically

A case file is written to a temporary name, flushed to disk and renamed; only then is its index
row committed. A run killed at any point leaves every earlier case and version exactly as it was
(at worst an unreferenced file, removed the next time the store is opened). Nothing is ever
overwritten: a changed series becomes a new version next to the old one.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from site_agent.errors import SiteAgentError

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    label TEXT,
    split TEXT NOT NULL,
    file TEXT NOT NULL,
    has_mask INTEGER NOT NULL,
    shape TEXT NOT NULL,
    spacing_mm REAL NOT NULL,
    source_spacing_mm TEXT NOT NULL,
    source_slices INTEGER NOT NULL,
    hu_min REAL NOT NULL,
    hu_max REAL NOT NULL,
    created_at TEXT NOT NULL,
    patient TEXT,
    PRIMARY KEY (case_id, version)
);
"""


# Version 2: cases are cropped to the box that holds the whole mediastinum (DESIGN.md,
# Preprocessing). Version 1 (SQLite's user_version 0) stores held the first design's 128 mm cubes.
STORE_VERSION = 2


class StoreError(SiteAgentError):
    """The case store is missing, unreadable or asked for a case it does not hold."""


@dataclass(frozen=True)
class CaseRecord:
    case_id: str
    version: int
    fingerprint: str
    label: str | None  # None: unlabelled, kept but never trained on
    split: str  # "train" or "holdout" (real cases kept for evaluation only)
    file: str
    has_mask: bool
    shape: tuple[int, int, int]
    spacing_mm: float
    source_spacing_mm: tuple[float, float, float]
    source_slices: int
    hu_min: float
    hu_max: float
    created_at: str
    # Keyed pseudonym of the PatientID: the unit of differential privacy. None only in stores
    # written before fedsynth recorded it, until the case is ingested again.
    patient: str | None = None

    def public(self) -> dict[str, object]:
        """What `cases --json` and reports show: no fingerprint, nothing from the DICOM headers."""
        data = asdict(self)
        data.pop("fingerprint")
        return data


class CaseStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cases_dir = root / "cases"
        self.cases_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(root / "index.sqlite", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._check_version()
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(cases)")}
        if "patient" not in columns:  # a store from before patients were recorded
            self._db.execute("ALTER TABLE cases ADD COLUMN patient TEXT")
        self._remove_orphans()

    def _check_version(self) -> None:
        """Refuse a store of the first design's cubes, untouched; stamp a new (empty) one."""
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version == STORE_VERSION:
            return
        held = int(self._db.execute("SELECT COUNT(*) FROM cases").fetchone()[0])
        if version > STORE_VERSION or held:
            self._db.close()
            if version > STORE_VERSION:
                raise StoreError(
                    f"the case store at {self.root} is version {version}, newer than this site agent "
                    f"(version {STORE_VERSION}); upgrade fedsynth"
                )
            raise StoreError(
                f"the case store at {self.root} holds {held} case(s) cropped by an earlier fedsynth to a "
                "128 mm cube, which leaves some lesions outside the volume; they cannot be used. Nothing "
                f"was changed. Move it aside and ingest the DICOM again: `mv {self.root} {self.root}.v1 "
                "&& site-agent ingest DICOM_DIR --labels labels.csv --config site.toml`"
            )
        self._db.execute(f"PRAGMA user_version = {STORE_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _remove_orphans(self) -> None:
        known = {row[0] for row in self._db.execute("SELECT file FROM cases")}
        for path in self.cases_dir.iterdir():
            if path.name.startswith(".") or f"cases/{path.name}" not in known:
                path.unlink(missing_ok=True)  # a write that never reached the index

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def latest(self, case_id: str) -> CaseRecord | None:
        row = self._db.execute(
            "SELECT * FROM cases WHERE case_id = ? ORDER BY version DESC LIMIT 1", (case_id,)
        ).fetchone()
        return _record(row) if row else None

    def all_latest(self) -> list[CaseRecord]:
        rows = self._db.execute(
            "SELECT c.* FROM cases c JOIN (SELECT case_id, MAX(version) v FROM cases GROUP BY case_id) m "
            "ON c.case_id = m.case_id AND c.version = m.v ORDER BY c.case_id"
        ).fetchall()
        return [_record(r) for r in rows]

    def patient_split(self, patient: str) -> str | None:
        """The split this patient's stored studies have, if any are stored."""
        row = self._db.execute(
            "SELECT split FROM cases WHERE patient = ? ORDER BY version DESC LIMIT 1", (patient,)
        ).fetchone()
        return None if row is None else str(row[0])

    def labelled_patients(self) -> dict[str, int]:
        """split -> how many patients with a labelled study it holds."""
        rows = self._db.execute(
            "SELECT split, COUNT(DISTINCT patient) FROM cases WHERE label IS NOT NULL GROUP BY split"
        )
        return {str(split): int(count) for split, count in rows}

    def versions(self, case_id: str) -> list[CaseRecord]:
        rows = self._db.execute(
            "SELECT * FROM cases WHERE case_id = ? ORDER BY version", (case_id,)
        ).fetchall()
        return [_record(r) for r in rows]

    def add(
        self, record: CaseRecord, image: NDArray[np.float32], mask: NDArray[np.uint8] | None
    ) -> CaseRecord:
        """Store a new version of a case: file first, then its index row."""
        latest = self.latest(record.case_id)
        version = 1 if latest is None else latest.version + 1
        name = f"{record.case_id}.v{version}.npz"
        record = CaseRecord(
            **{
                **asdict(record),
                "version": version,
                "file": f"cases/{name}",
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        tmp = self.cases_dir / f".{name}.tmp"
        with tmp.open("wb") as fh:
            if mask is None:
                np.savez_compressed(fh, image=image.astype(np.float32))
            else:
                np.savez_compressed(fh, image=image.astype(np.float32), mask=mask.astype(np.uint8))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.cases_dir / name)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.case_id,
                    record.version,
                    record.fingerprint,
                    record.label,
                    record.split,
                    record.file,
                    int(record.has_mask),
                    json.dumps(record.shape),
                    record.spacing_mm,
                    json.dumps(record.source_spacing_mm),
                    record.source_slices,
                    record.hu_min,
                    record.hu_max,
                    record.created_at,
                    record.patient,
                ),
            )
        return record

    def relabel(self, case_id: str, label: str | None, split: str) -> None:
        """Labels are metadata: a corrected label applies to every version of the case."""
        with self._transaction() as db:
            db.execute("UPDATE cases SET label = ?, split = ? WHERE case_id = ?", (label, split, case_id))

    def set_patient(self, case_id: str, patient: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE cases SET patient = ? WHERE case_id = ?", (patient, case_id))

    def load(
        self, case_id: str, version: int | None = None
    ) -> tuple[CaseRecord, NDArray[np.float32], NDArray[np.uint8] | None]:
        records = self.versions(case_id)
        if not records:
            raise StoreError(f"no case {case_id!r} in the store at {self.root}")
        record = records[-1] if version is None else next((r for r in records if r.version == version), None)
        if record is None:
            raise StoreError(f"case {case_id} has no version {version}")
        with np.load(self.root / record.file, allow_pickle=False) as data:
            image = data["image"]
            mask = data["mask"] if "mask" in data.files else None
        return record, image, mask


def _record(row: tuple) -> CaseRecord:  # type: ignore[type-arg]
    (
        case_id,
        version,
        fingerprint,
        label,
        split,
        file,
        has_mask,
        shape,
        spacing,
        source_spacing,
        slices,
        hu_min,
        hu_max,
        created,
        patient,
    ) = row
    return CaseRecord(
        case_id=case_id,
        version=version,
        fingerprint=fingerprint,
        label=label,
        split=split,
        file=file,
        has_mask=bool(has_mask),
        shape=tuple(json.loads(shape)),
        spacing_mm=spacing,
        source_spacing_mm=tuple(json.loads(source_spacing)),
        source_slices=slices,
        hu_min=hu_min,
        hu_max=hu_max,
        created_at=created,
        patient=patient,
    )
