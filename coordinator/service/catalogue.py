"""Bring what the federation wrote to disk into the database and the object store: sites, rounds
(with each site's result), pooled set versions and the models rounds trained.

The ServerApp writes rounds, pooled sets and models as files (it runs inside Flower, apart from the
service); the service records them here. A pooled version or a model is recorded only once it is
complete and checked: its files are hashed against SHA256SUMS (or the model's card), copied to the
object store under a fresh prefix, and only then does the row that points at them appear, in one
transaction. New versions and models are recorded unpublished: an operator publishes them.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from coordinator.config import CoordinatorSettings
from coordinator.errors import CoordinatorError
from coordinator.federation.pooling import POOLED_ID, pooled_root
from coordinator.federation.rounds import RoundFolder, RoundReport, list_rounds
from coordinator.federation.sites import list_sites
from coordinator.service.database import Database
from coordinator.service.models import Dataset, DatasetFile, Model, ModelFile, Round, Site, SiteResult
from coordinator.service.object_store import ObjectStore
from shared.hashing import file_sha256
from shared.synthetic_set import SUMS, verify_synthetic_set

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^v(\d+)$")
MODEL_CARD = "metadata.json"
DATASETS_PREFIX = "datasets"
MODELS_PREFIX = "models"


class CatalogueError(CoordinatorError):
    """Something a round left on disk does not check out (a model that does not match its card)."""


def sync_records(session: Session, settings: CoordinatorSettings) -> None:
    """Sites and rounds: cheap (a few small files), so routes that show them call it first."""
    _sync_sites(session, settings)
    for report in list_rounds(settings):
        _sync_round(session, settings, report)


def sync_artifacts(database: Database, settings: CoordinatorSettings, store: ObjectStore) -> None:
    """Pooled versions and models not yet recorded: checked, uploaded, then recorded, each in a
    transaction of its own that opens only after its upload, so no upload holds the database."""
    with database.session() as session:
        versions = set(session.scalars(select(Dataset.version).where(Dataset.dataset_id == POOLED_ID)))
        models = set(session.scalars(select(Model.model_sha256)))
    for folder, version in _new_pooled_versions(settings, versions):
        dataset = _upload_pooled(settings, store, folder, version)
        with database.session() as session:
            session.add(dataset)
        log.info("recorded pooled set v%d (%d files) at %s", version, len(dataset.files), dataset.location)
    for report in list_rounds(settings):
        if report.model_sha256 is not None and report.model_sha256 not in models:
            model = _upload_model(settings, store, report.round_id, report.model_sha256)
            with database.session() as session:
                session.add(model)
            models.add(model.model_sha256)
            log.info(
                "recorded model %s of round %s at %s", model.model_sha256[:12], model.round_id, model.location
            )


def remove_orphans(session: Session, store: ObjectStore) -> list[str]:
    """Prefixes in the store that no row points at: what an upload cut off by a crash left behind.
    Only safe while nothing uploads, so the service runs it once, at start."""
    removed = []
    for dataset_id in {*session.scalars(select(Dataset.dataset_id)), POOLED_ID}:
        keep = set(session.scalars(select(Dataset.location).where(Dataset.dataset_id == dataset_id)))
        removed += store.remove_orphans(f"{DATASETS_PREFIX}/{dataset_id}", keep)
    removed += store.remove_orphans(MODELS_PREFIX, set(session.scalars(select(Model.location))))
    return removed


def _sync_sites(session: Session, settings: CoordinatorSettings) -> None:
    for site in list_sites(settings).values():
        if session.get(Site, site.site_id) is None:
            session.add(
                Site(
                    site_id=site.site_id,
                    node_id=str(site.node_id),
                    key_fingerprint=site.fingerprint,
                    added_at=datetime.fromisoformat(site.added_at),
                )
            )


def _sync_round(session: Session, settings: CoordinatorSettings, report: RoundReport) -> None:
    row = session.get(Round, report.round_id)
    if row is not None and row.report_json == report.model_dump_json():
        return
    if row is None:
        plan = RoundFolder.of(settings, report.round_id).read_plan()
        row = Round(
            round_id=report.round_id,
            created_at=report.created_at,
            request_json=plan.request.to_json(),
            launched_by=plan.launched_by,
        )
        session.add(row)
    row.state, row.message = report.state, report.message
    row.updated_at = report.updated_at
    row.finished_at = report.updated_at if report.finished else None
    row.flower_run_id = None if report.flower_run_id is None else str(report.flower_run_id)
    row.report_json = report.model_dump_json()
    results = {r.site_id: r for r in row.results}
    for site_id, result in report.sites.items():
        entry = results.get(site_id) or SiteResult(site_id=site_id, synthesis=result.synthesis)
        if site_id not in results:
            row.results.append(entry)
        entry.synthesis, entry.reason, entry.samples = result.synthesis, result.reason, result.samples
        entry.epsilon = None if result.privacy is None else result.privacy.epsilon
        entry.evaluation = result.evaluation
        entry.metrics_json = None if result.metrics is None else result.metrics.model_dump_json()
        site = session.get(Site, site_id)
        if site is not None and result.budget is not None:
            site.budget_json = result.budget.model_dump_json()
            site.last_seen_at = report.updated_at


def _new_pooled_versions(settings: CoordinatorSettings, known: set[int]) -> list[tuple[Path, int]]:
    root = pooled_root(settings)
    found = []
    for folder in sorted(root.glob("v*")) if root.exists() else []:
        match = _VERSION.match(folder.name)
        if folder.is_dir() and match is not None and int(match.group(1)) not in known:
            found.append((folder, int(match.group(1))))
    return found


def _upload_pooled(settings: CoordinatorSettings, store: ObjectStore, folder: Path, version: int) -> Dataset:
    verify_synthetic_set(folder)  # every file against SHA256SUMS, nothing unlisted
    card_json = (folder / "card.json").read_text()
    json.loads(card_json)  # a card that is not JSON stops the sync here, loudly
    index = pooled_root(settings) / f"v{version}.json"
    round_id = json.loads(index.read_text()).get("round_id") if index.exists() else None
    files = _listed(folder)
    location = store.put_tree(
        {name: folder / name for name in [SUMS, *files]}, under=f"{DATASETS_PREFIX}/{POOLED_ID}/v{version}"
    )
    dataset = Dataset(
        dataset_id=POOLED_ID, version=version, round_id=round_id, card_json=card_json, location=location
    )
    for name, digest in files.items():
        dataset.files.append(DatasetFile(path=name, sha256=digest, size=(folder / name).stat().st_size))
    return dataset


def _listed(folder: Path) -> dict[str, str]:
    """path -> sha256 of every file SHA256SUMS lists."""
    listed = {}
    for line in filter(None, (folder / SUMS).read_text().splitlines()):
        digest, _, name = line.partition("  ")
        listed[name] = digest
    return listed


def _upload_model(
    settings: CoordinatorSettings, store: ObjectStore, round_id: str, model_sha256: str
) -> Model:
    folder = RoundFolder.of(settings, round_id).model_dir
    files = _model_files(folder, model_sha256)
    with tempfile.TemporaryDirectory() as scratch:
        sums = Path(scratch) / SUMS
        sums.write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(files.items())))
        sources = {SUMS: sums, **{name: folder / name for name in files}}
        location = store.put_tree(sources, under=f"{MODELS_PREFIX}/{model_sha256[:16]}")
    model = Model(
        model_sha256=model_sha256,
        round_id=round_id,
        card_json=(folder / MODEL_CARD).read_text(),
        location=location,
    )
    for name, digest in files.items():
        model.files.append(ModelFile(path=name, sha256=digest, size=(folder / name).stat().st_size))
    return model


def _model_files(folder: Path, model_sha256: str) -> dict[str, str]:
    """The bundle's files with their sha256, checked: the card is the model's hash, and it holds
    every weight file's hash (the same rule sites apply before scoring a model)."""
    card_path = folder / MODEL_CARD
    if not card_path.is_file() or file_sha256(card_path) != model_sha256:
        raise CatalogueError(f"{folder}: {MODEL_CARD} is missing or is not the model {model_sha256[:12]}")
    files = {MODEL_CARD: model_sha256}
    for name, digest in json.loads(card_path.read_text())["weights_sha256"].items():
        path = folder / f"{name}.safetensors"
        if not path.is_file() or file_sha256(path) != digest:
            raise CatalogueError(f"{path} is missing or does not match the model's card")
        files[path.name] = digest
    return files
