"""`site-agent sample` and `site-agent export`: synthetic sets from a trained generator.

`sample` writes a set and its audit for the hospital's own review. `export` does the same and,
only when the audit passes, keeps a copy of exactly what leaves under [paths] exports, records the
release in the ledger, and writes the set to its destination. A refused export writes nothing
but the refusal.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from shared.devices import choose_device
from shared.errors import FedsynthError
from shared.schemas import DatasetCard, SiteContribution
from shared.synthetic_set import SetItem, write_synthetic_set
from site_agent.config import SiteSettings
from site_agent.errors import SiteRefusal
from site_agent.generator.backend import GeneratorError
from site_agent.generator.registry import load_backend
from site_agent.generator.training_run import TrainedRun
from site_agent.generator.training_set import select_cases
from site_agent.ingest.store import CaseStore
from site_agent.privacy.ledger import Ledger
from site_agent.synthetic.audit import AuditResult, audit

AUDIT_FILE = "audit.json"  # site-only: written beside sampled sets, never inside an export


class ExportRefused(SiteRefusal):
    """The export was refused; nothing left the site."""

    reason = "audit"
    public_detail = "the site's memorisation audit or export policy blocked the release"


@dataclass(frozen=True)
class SampledSet:
    folder: Path
    run: TrainedRun
    audit: AuditResult
    sums_sha256: str
    samples: int


def latest_run(settings: SiteSettings, run_id: str | None = None) -> TrainedRun:
    runs = Ledger(settings.paths.ledger).runs()
    done = [r for r in runs.values() if r.state == "complete"]
    if run_id is not None:
        done = [r for r in done if r.run_id == run_id]
        if not done:
            raise GeneratorError(f"no finished training run {run_id!r} in the ledger")
    if not done:
        raise GeneratorError("no finished generator: train one first with `site-agent train`")
    chosen = max(done, key=lambda r: (r.reserved_at, r.run_id))
    folder = settings.paths.models / chosen.run_id
    if not (folder / "run.json").exists():
        raise GeneratorError(f"the generator of run {chosen.run_id} is missing from {folder}")
    return TrainedRun.read(folder)


def sample_set(
    settings: SiteSettings, out: Path, *, per_class: int, run_id: str | None, seed: int
) -> SampledSet:
    """Sample `per_class` volumes of every class into `out` (a new folder) and audit them."""
    return _sample(settings, out, latest_run(settings, run_id), per_class=per_class, seed=seed)


def _sample(settings: SiteSettings, out: Path, run: TrainedRun, *, per_class: int, seed: int) -> SampledSet:
    if per_class < 1:
        raise FedsynthError("--per-class must be at least 1")
    if run.classes != settings.classes or run.box != settings.preprocessing.box:
        raise GeneratorError(
            f"run {run.run_id} was trained for other classes or box size than site.toml says"
        )
    backend = load_backend(
        run.generator.backend, settings.paths.models / run.run_id, choose_device(settings.compute.device)
    )
    labels = np.repeat(np.arange(len(run.classes), dtype=np.int64), per_class)
    samples = backend.sample(labels, seed=seed)

    training, holdout = _real_boxes(settings)
    result = audit(samples.images, training, holdout, spacing_mm=run.spacing_mm, rules=settings.audit)

    items = [
        SetItem(
            name=f"{settings.site_id}-{n:05d}",
            image=samples.images[n],
            mask=samples.masks[n],
            label=run.classes[int(k)],
            site=settings.site_id,
        )
        for n, k in enumerate(samples.labels)
    ]
    lo, hi = settings.preprocessing.window_hu
    card = DatasetCard(
        dataset_id=f"{settings.site_id}-{run.round_id}"[:64],
        version=1,
        description=f"Synthetic mediastinal CT from site {settings.site_id}, round {run.round_id}",
        classes=run.classes,
        class_counts={name: per_class for name in run.classes},
        volume_shape=run.box,
        spacing_mm=(run.spacing_mm,) * 3,
        intensity=f"CT window [{lo:g}, {hi:g}] HU scaled to [-1, 1]",
        sites=(
            SiteContribution(
                site_id=settings.site_id,
                round_id=run.round_id,
                samples=len(items),
                privacy=run.privacy,
                generator=run.generator,
            ),
        ),
    )
    sums = write_synthetic_set(out, items, card, spacing_mm=run.spacing_mm)
    return SampledSet(folder=out, run=run, audit=result, sums_sha256=sums, samples=len(items))


def release_set(settings: SiteSettings, run: TrainedRun, *, per_class: int, seed: int) -> SampledSet:
    """Sample and audit; when the audit passes, keep the set under [paths] exports and record its
    release. The returned folder is exactly what may leave the site; a refusal raises ExportRefused."""
    if math.isinf(run.privacy.epsilon) and not settings.privacy.allow_non_private_export:
        raise ExportRefused(
            f"run {run.run_id} was trained without differential privacy (epsilon = infinity); its samples "
            "may not leave the site. For benchmarks on phantom data only, set "
            "[privacy] allow_non_private_export = true in site.toml."
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    local = settings.paths.exports / f"{run.run_id}-export-{stamp}"
    sampled = _sample(settings, local, run, per_class=per_class, seed=seed)
    (local.parent / f"{local.name}.{AUDIT_FILE}").write_text(
        json.dumps(sampled.audit.to_dict(), indent=2) + "\n"
    )
    ledger = Ledger(settings.paths.ledger)
    if not sampled.audit.passed:
        review = local.with_name(f"{local.name}.refused")
        local.rename(review)
        ledger.refuse(run.run_id, round_id=run.round_id, reason="memorisation audit")
        raise ExportRefused(
            f"export refused by the memorisation audit: {sampled.audit.reason}. Nothing left the site; "
            f"the set is kept for your review in {review}."
        )
    # Recorded before anything is handed out: a crash after this line over-counts, never under-counts.
    ledger.release(run.run_id, round_id=run.round_id, samples=sampled.samples, set_sha256=sampled.sums_sha256)
    return sampled


def export_set(
    settings: SiteSettings, out: Path, *, per_class: int, run_id: str | None, seed: int
) -> SampledSet:
    if out.exists():
        raise FedsynthError(f"{out} already exists; choose a new folder (nothing was changed)")
    sampled = release_set(settings, latest_run(settings, run_id), per_class=per_class, seed=seed)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(sampled.folder, staging)
    staging.rename(out)
    return SampledSet(out, sampled.run, sampled.audit, sampled.sums_sha256, sampled.samples)


def _real_boxes(settings: SiteSettings) -> tuple[np.ndarray, np.ndarray]:
    """The training patients' boxes and the held-out patients' boxes, for the audit only."""
    with CaseStore(settings.paths.store) as store:
        chosen = select_cases(store).chosen
        trained = {c.patient for c in chosen}
        holdout = [c for c in store.all_latest() if c.split == "holdout" and c.patient not in trained]
        training_boxes = np.stack([store.load(c.case_id, c.version)[1] for c in chosen])
        holdout_boxes = (
            np.stack([store.load(c.case_id, c.version)[1] for c in holdout])
            if holdout
            else np.zeros((0, *training_boxes.shape[1:]), np.float32)
        )
    return training_boxes, holdout_boxes
