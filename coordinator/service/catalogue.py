"""Bring what the federation wrote to disk into the database: sites, rounds, pooled set versions.

The ServerApp writes rounds and pooled sets as files (it runs inside Flower, apart from the
service); the service records them here. A pooled version is recorded only once it is complete:
its folder exists only after an atomic rename, and every file is checked against SHA256SUMS first.
New versions are recorded unpublished: an operator publishes them.
"""

from __future__ import annotations

import json
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from coordinator.config import CoordinatorSettings
from coordinator.federation.pooling import POOLED_ID, pooled_root
from coordinator.federation.rounds import RoundFolder, list_rounds
from coordinator.federation.sites import list_sites
from coordinator.service.models import Dataset, DatasetFile, Round, Site
from shared.synthetic_set import SUMS, verify_synthetic_set

_VERSION = re.compile(r"^v(\d+)$")


def sync(session: Session, settings: CoordinatorSettings) -> None:
    _sync_sites(session, settings)
    _sync_rounds(session, settings)
    _sync_pooled(session, settings)


def _sync_sites(session: Session, settings: CoordinatorSettings) -> None:
    for site in list_sites(settings).values():
        if session.get(Site, site.site_id) is None:
            session.add(
                Site(site_id=site.site_id, node_id=str(site.node_id), key_fingerprint=site.fingerprint)
            )


def _sync_rounds(session: Session, settings: CoordinatorSettings) -> None:
    for report in list_rounds(settings):
        row = session.get(Round, report.round_id)
        if row is not None and row.state == report.state:
            continue
        if row is None:
            plan = RoundFolder.of(settings, report.round_id).read_plan()
            row = Round(
                round_id=report.round_id, created_at=report.created_at, request_json=plan.request.to_json()
            )
            session.add(row)
        row.state = report.state
        row.flower_run_id = None if report.flower_run_id is None else str(report.flower_run_id)
        row.report_json = report.model_dump_json()
        for site_id, result in report.sites.items():
            site = session.get(Site, site_id)
            if site is not None and result.budget is not None:
                site.budget_json = result.budget.model_dump_json()
                site.last_seen_at = report.updated_at


def _sync_pooled(session: Session, settings: CoordinatorSettings) -> None:
    root = pooled_root(settings)
    known = set(session.scalars(select(Dataset.version).where(Dataset.dataset_id == POOLED_ID)))
    for folder in sorted(root.glob("v*")) if root.exists() else []:
        match = _VERSION.match(folder.name)
        if not folder.is_dir() or match is None or int(match.group(1)) in known:
            continue
        verify_synthetic_set(folder)
        dataset = Dataset(
            dataset_id=POOLED_ID,
            version=int(match.group(1)),
            card_json=(folder / "card.json").read_text(),
            location=str(folder.relative_to(settings.paths.data)),
        )
        for line in filter(None, (folder / SUMS).read_text().splitlines()):
            digest, _, rel = line.partition("  ")
            dataset.files.append(DatasetFile(path=rel, sha256=digest, size=(folder / rel).stat().st_size))
        json.loads(dataset.card_json)  # a card that is not JSON stops the sync here, loudly
        session.add(dataset)
