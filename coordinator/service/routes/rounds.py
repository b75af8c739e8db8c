"""Rounds: launch (which starts the round's Flower run), list, show with state and progress, and
cancel. Operators only."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlalchemy import select

from coordinator.federation.errors import FederationError, RoundError
from coordinator.federation.launch import cancel_round, launch_round
from coordinator.federation.round_order import RoundOrder
from coordinator.federation.rounds import RoundFolder, RoundReport, RoundState
from coordinator.service.database import Database
from coordinator.service.deps import (
    ConfigFileDep,
    OperatorDep,
    SessionDep,
    SettingsDep,
    WatcherDep,
    error_responses,
)
from coordinator.service.models import Round
from coordinator.service.public_text import plain_reason
from coordinator.service.tokens import audit

router = APIRouter(prefix="/rounds", tags=["rounds"], responses=error_responses(401, 403, 404, 409, 503))


class RoundPublic(BaseModel):
    round_id: str
    state: RoundState
    message: str
    launched_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    sites_asked: int
    sites_answered: int
    pooled_version: int | None
    model_sha256: str | None


def _public(row: Round) -> RoundPublic:
    report = RoundReport.model_validate_json(row.report_json or "{}")
    return RoundPublic(
        round_id=row.round_id,
        state=report.state,
        message=report.message,
        launched_by=row.launched_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        sites_asked=len(report.sites),
        sites_answered=sum(1 for s in report.sites.values() if s.synthesis == "answered"),
        pooled_version=report.pooled_version,
        model_sha256=report.model_sha256,
    )


def _report(settings: SettingsDep, round_id: str) -> RoundReport:
    try:
        folder = RoundFolder.of(settings, round_id)
    except RoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no round {round_id}") from None
    if not folder.report_path.exists():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no round {round_id}")
    return folder.read_report()


@router.get("", response_model=list[RoundPublic])
def list_rounds(session: SessionDep, watcher: WatcherDep, _: OperatorDep) -> list[RoundPublic]:
    """Every round, oldest first."""
    watcher.refresh_records()
    return [_public(row) for row in session.scalars(select(Round).order_by(Round.created_at))]


@router.post(
    "", response_model=RoundReport, status_code=status.HTTP_201_CREATED, responses=error_responses(400)
)
def launch(
    body: RoundOrder,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    config_file: ConfigFileDep,
    watcher: WatcherDep,
    caller: OperatorDep,
) -> RoundReport:
    """Plan a round and start its Flower run; it then runs on its own (follow it with GET)."""
    if body.round_id is not None and RoundFolder.of(settings, body.round_id).folder.exists():
        raise HTTPException(status.HTTP_409_CONFLICT, f"round {body.round_id} exists already")
    try:
        folder = launch_round(settings, config_file, body, launched_by=caller.name)
    except FederationError as exc:
        # The route's own session rolls back with the error, so the refusal is audited in a
        # transaction of its own: a launch that failed is something an operator did, too.
        database: Database = request.app.state.database
        with database.session() as record:
            target = body.round_id or "(no round id)"
            audit(
                record,
                caller,
                "round.launch.failed",
                target,
                reason=plain_reason(str(exc)),
                **body.model_dump(exclude_none=True),
            )
        raise
    report = folder.read_report()
    audit(session, caller, "round.launch", report.round_id, **body.model_dump(exclude_none=True))
    watcher.refresh_records()
    return report


@router.get("/{round_id}", response_model=RoundReport)
def show_round(round_id: str, settings: SettingsDep, _: OperatorDep) -> RoundReport:
    """The round's report: state, progress, each site's outcome, budget and metrics."""
    return _report(settings, round_id)


# The figures a round draws once it has a model (training) and its sites' scores (evaluation).
Figure = Literal["montage.png", "roc.png", "confusion.png", "site_metrics.png"]
PNG = {200: {"content": {"image/png": {}}, "description": "The figure"}}


@router.get("/{round_id}/figures/{name}", response_class=FileResponse, responses=PNG)  # type: ignore[arg-type]
def round_figure(round_id: str, name: Figure, settings: SettingsDep, _: OperatorDep) -> FileResponse:
    """A figure of the round's report: a montage of the pooled set, the model's ROC and confusion
    matrix on its validation split, or the sites' metrics with their intervals."""
    _report(settings, round_id)
    path = RoundFolder.of(settings, round_id).figures / name
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"round {round_id} has no {name} (yet)")
    return FileResponse(path, media_type="image/png")


@router.post("/{round_id}/cancel", response_model=RoundReport, status_code=status.HTTP_202_ACCEPTED)
def cancel(
    round_id: str, session: SessionDep, settings: SettingsDep, watcher: WatcherDep, caller: OperatorDep
) -> RoundReport:
    """Ask a round to stop; it ends as `cancelled` within seconds. Sites keep what they spent."""
    _report(settings, round_id)
    report = cancel_round(settings, RoundFolder.of(settings, round_id), by=caller.name)
    audit(session, caller, "round.cancel", round_id)
    watcher.refresh_records()
    return report
