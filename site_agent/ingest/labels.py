"""The hospital's label manifest: `study_uid,label[,split][,mask]`, checked before anything runs.

`label` empty means unlabelled (kept, never trained on); `split` is `train` or `holdout`; `mask`
is a NIfTI file relative to the CSV, aligned with the series. Errors name the file, the line and
the column, never the UID in it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from shared.classes import LabelSet
from site_agent.errors import SiteAgentError

SPLITS = ("train", "holdout")


class LabelsError(SiteAgentError):
    """The label manifest cannot be used; nothing has been ingested."""


@dataclass(frozen=True)
class LabelRow:
    label: str | None
    split: str | None
    mask: Path | None


def read_labels(path: Path, classes: LabelSet, masks_dir: Path | None = None) -> dict[str, LabelRow]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = set(reader.fieldnames or ())
            missing = {"study_uid", "label"} - columns
            if missing:
                raise LabelsError(
                    f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                    "the header must start with study_uid,label"
                )
            rows: dict[str, LabelRow] = {}
            for line, row in enumerate(reader, start=2):
                rows_key = (row.get("study_uid") or "").strip()
                if not rows_key:
                    raise LabelsError(f"{path} line {line}: study_uid is empty")
                if rows_key in rows:
                    raise LabelsError(
                        f"{path} line {line}: this study_uid already appeared on an earlier line"
                    )
                label = (row.get("label") or "").strip() or None
                if label is not None and label not in classes:
                    raise LabelsError(
                        f"{path} line {line}: label {label!r} is not one of: {', '.join(classes)}"
                    )
                split = (row.get("split") or "").strip().lower() or None
                if split is not None and split not in SPLITS:
                    raise LabelsError(
                        f"{path} line {line}: split {split!r} must be one of: {', '.join(SPLITS)}"
                    )
                mask = _mask_path(path, row, rows_key, masks_dir, line)
                rows[rows_key] = LabelRow(label, split, mask)
    except OSError as exc:
        raise LabelsError(f"cannot read label manifest {path}: {exc.strerror}") from None
    except csv.Error as exc:
        raise LabelsError(f"{path} is not a valid CSV file: {exc}") from None
    except UnicodeDecodeError as exc:
        raise LabelsError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV and run again"
        ) from None
    return rows


def _mask_path(
    path: Path, row: dict[str, str], study_uid: str, masks_dir: Path | None, line: int
) -> Path | None:
    given = (row.get("mask") or "").strip()
    if given:
        mask = (path.parent / given).resolve()
        if not mask.is_file():
            raise LabelsError(f"{path} line {line}: mask file {given!r} does not exist")
        return mask
    if masks_dir is not None:
        candidate = masks_dir / f"{study_uid}.nii.gz"
        return candidate if candidate.is_file() else None
    return None
