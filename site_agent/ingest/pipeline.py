"""`site-agent ingest`: a DICOM export in, preprocessed cases in the private store, a report out.

For each study: check every series, choose one (CT, axial, enough slices, preferred kernel), read
its pixels, preprocess, store. A study whose series all fail gets each refusal in the report; a
broken file never stops the run.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np

from shared.classes import LabelSet
from shared.dicom.checks import Geometry, SeriesRejected, check_series
from shared.dicom.scan import Series, scan
from shared.dicom.volume import HuVolume, load_hu
from shared.preprocessing import PreprocessingError, preprocess
from site_agent.config import SiteSettings
from site_agent.ingest.labels import LabelRow, read_labels
from site_agent.ingest.pseudonyms import Pseudonyms, load_or_create_secret
from site_agent.ingest.report import AcceptedCase, IngestReport, RefusedSeries, SkippedSeries, UnreadableFile
from site_agent.ingest.store import CaseRecord, CaseStore

log = logging.getLogger(__name__)

HOLDOUT_AFTER = 4  # labelled patients a site trains on before it must hold one out


Progress = Callable[[str], None]


def ingest(
    settings: SiteSettings,
    dicom_dir: Path,
    *,
    labels_csv: Path | None = None,
    masks_dir: Path | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    notify = progress or (lambda _message: None)
    labels = read_labels(labels_csv, LabelSet(settings.classes), masks_dir) if labels_csv else {}
    names = Pseudonyms(load_or_create_secret(settings.paths.store))
    report = IngestReport()
    found = scan(dicom_dir)
    report.files_seen = (
        sum(len(s.instances) for s in found.series) + len(found.not_dicom) + len(found.unreadable)
    )
    report.not_dicom_files = len(found.not_dicom)
    report.unreadable_files = [
        UnreadableFile(file_ref=names.file_ref(p), reason=r) for p, r in found.unreadable
    ]
    studies: dict[str, list[Series]] = defaultdict(list)
    for series in found.series:
        studies[series.study_uid].append(series)
    report.labels_without_study = len(set(labels) - set(studies))

    with CaseStore(settings.paths.store) as store:
        for n, (study_uid, series_list) in enumerate(
            sorted(studies.items(), key=lambda kv: names.case_id(kv[0])), 1
        ):
            case_id = names.case_id(study_uid)
            notify(f"study {n}/{len(studies)}: {case_id}")
            accepted = _ingest_study(
                settings, store, names, case_id, series_list, labels.get(study_uid), report
            )
            if accepted is not None:
                report.accepted.append(accepted)
                log.info("%s: %s (version %d)", case_id, accepted.status, accepted.version)
    report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    return report


def _preference(settings: SiteSettings) -> Callable[[tuple[Series, Geometry]], tuple[int, int, int]]:
    avoid = [re.compile(pattern, re.IGNORECASE) for pattern in settings.ingest.avoid_kernels]

    def key(candidate: tuple[Series, Geometry]) -> tuple[int, int, int]:
        series, geometry = candidate
        avoided = any(p.search(series.kernel) for p in avoid)
        return (int(avoided), -len(geometry.instances), series.series_number)

    return key


def _ingest_study(
    settings: SiteSettings,
    store: CaseStore,
    names: Pseudonyms,
    case_id: str,
    series_list: list[Series],
    label_row: LabelRow | None,
    report: IngestReport,
) -> AcceptedCase | None:
    def refuse(series: Series, exc: SeriesRejected) -> None:
        file_ref = names.file_ref(exc.instance.relative) if exc.instance else None
        report.refused.append(
            RefusedSeries(
                series_ref=names.series_ref(series.series_uid),
                case_id=case_id,
                check=exc.check,
                detail=exc.detail,
                file_ref=file_ref,
                other_file_refs=[names.file_ref(other.relative) for other in exc.others],
            )
        )
        log.info("%s: a series was refused (%s)", case_id, exc.check)

    passing: list[tuple[Series, Geometry]] = []
    for series in series_list:
        try:
            passing.append((series, check_series(series, min_slices=settings.ingest.min_slices)))
        except SeriesRejected as exc:
            refuse(series, exc)
    prefer = _preference(settings)
    passing.sort(key=prefer)

    chosen: tuple[Series, HuVolume] | None = None
    chosen_rank: tuple[int, int, int] | None = None
    for series, geometry in passing:
        if chosen is not None:
            assert chosen_rank is not None
            avoided = prefer((series, geometry))[0] > chosen_rank[0]
            why = "its kernel is in [ingest] avoid_kernels" if avoided else "the one used has more slices"
            report.skipped.append(
                SkippedSeries(
                    series_ref=names.series_ref(series.series_uid),
                    case_id=case_id,
                    reason=f"another series of this study was used: {why}",
                )
            )
            continue
        try:
            chosen = (series, load_hu(geometry))
            chosen_rank = prefer((series, geometry))
        except SeriesRejected as exc:
            refuse(series, exc)
    if chosen is None:
        return None
    series, volume = chosen

    label = label_row.label if label_row else None
    patient = names.patient_ref(series.patient_id, series.study_uid)
    split = (label_row.split if label_row and label_row.split else None) or _patient_split(
        store, patient, labelled=label is not None, settings=settings
    )
    latest = store.latest(case_id)
    warnings: list[str] = []
    if latest is not None and latest.fingerprint == volume.fingerprint:
        status = "unchanged"
        if latest.patient != patient:
            store.set_patient(case_id, patient)
        if (latest.label, latest.split) != (label, split) and label_row is not None:
            store.relabel(case_id, label, split)
            status = "relabelled"
        record = store.latest(case_id)
        assert record is not None
        return _accepted(record, status, warnings)

    mask = _load_mask(label_row.mask, volume, warnings) if label_row and label_row.mask else None
    try:
        cropped = preprocess(volume.hu, volume.affine, mask, settings.preprocessing)
    except PreprocessingError as exc:
        refuse(series, SeriesRejected(exc.check, str(exc)))
        return None
    low, high = volume.hu_range
    record = store.add(
        CaseRecord(
            case_id=case_id,
            version=0,
            fingerprint=volume.fingerprint,
            label=label,
            split=split,
            file="",
            has_mask=cropped.mask is not None,
            shape=cast(tuple[int, int, int], tuple(cropped.image.shape)),
            spacing_mm=settings.preprocessing.spacing_mm,
            source_spacing_mm=volume.spacing,
            source_slices=volume.hu.shape[2],
            hu_min=low,
            hu_max=high,
            created_at="",
            patient=patient,
        ),
        cropped.image,
        cropped.mask,
    )
    return _accepted(record, "new" if latest is None else "new-version", warnings)


def _patient_split(store: CaseStore, patient: str, *, labelled: bool, settings: SiteSettings) -> str:
    """A case's split without a `split` column. A patient keeps the split already stored for
    them, so all their studies sit on one side. A new patient gets the keyed draw, except that a
    site with HOLDOUT_AFTER labelled patients and none held out holds the next labelled one out:
    by chance alone, 7% of sites of 12 patients would otherwise have nothing to score a model on
    (0.8^12 at the default fraction of 0.2)."""
    known = store.patient_split(patient)
    if known is not None:
        return known
    drawn = _holdout_draw(patient, settings)
    if drawn == "train" and labelled and settings.preprocessing.holdout_fraction > 0:
        per_split = store.labelled_patients()
        if per_split.get("holdout", 0) == 0 and per_split.get("train", 0) >= HOLDOUT_AFTER:
            return "holdout"
    return drawn


def _holdout_draw(patient: str, settings: SiteSettings) -> str:
    """A case's split without a `split` column: a keyed draw, the same on every run. Drawn per
    patient, so no patient's studies sit on both sides of the split."""
    draw = int(hmac.new(b"holdout", patient.encode(), "sha256").hexdigest()[:8], 16) / 0xFFFFFFFF
    return "holdout" if draw < settings.preprocessing.holdout_fraction else "train"


def _load_mask(path: Path, volume: HuVolume, warnings: list[str]) -> np.ndarray | None:
    try:
        image = cast(nib.Nifti1Image, nib.load(path))
        data = np.asarray(image.dataobj)
    except Exception as exc:
        warnings.append(f"mask ignored: the NIfTI file cannot be read ({type(exc).__name__})")
        return None
    if data.shape != volume.hu.shape:
        warnings.append(f"mask ignored: its shape {data.shape} differs from the series' {volume.hu.shape}")
        return None
    if not np.allclose(image.affine, volume.affine, atol=0.5):
        warnings.append(
            "mask ignored: it is not aligned with the series (affines differ by more than 0.5 mm)"
        )
        return None
    return (data > 0).astype(np.uint8)


def _accepted(record: CaseRecord, status: str, warnings: list[str]) -> AcceptedCase:
    shown = {k: v for k, v in record.public().items() if k in AcceptedCase.model_fields}
    return AcceptedCase(**shown, status=status, warnings=warnings)
