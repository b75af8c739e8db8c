"""A round on disk: its plan (what was asked) and its report (what happened, updated as it happens).

    <data>/rounds/<round_id>/plan.json     RoundPlan, written once by `rounds launch`
    <data>/rounds/<round_id>/round.json    RoundReport: state, per-site outcome, pooled set, model
    <data>/rounds/<round_id>/sites/<site>/ each site's validated synthetic set
    <data>/rounds/<round_id>/model/        the diagnostic model trained on the pooled set
    <data>/rounds/<round_id>/figures/      montage of pooled samples, ROC, per-site metrics
    <data>/rounds/<round_id>/.serverapp-heartbeat  the live ServerApp's run id, rewritten every 2 s
    <data>/rounds/<round_id>/cancel.json   present once an operator asked to cancel the round

The report is rewritten atomically at every change, so `rounds show` (or the API) always reads a
whole document. Its `state` only moves forward:
launched -> synthesizing -> pooling -> training -> evaluating -> completed, or to failed or
cancelled from any.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coordinator.config import CoordinatorSettings
from coordinator.federation.errors import RoundError
from shared.schemas import BudgetStatus, PrivacySpend, RoundRequest, SiteMetricsReply
from shared.schemas._base import describe_validation_error

RoundState = Literal[
    "launched", "synthesizing", "pooling", "training", "evaluating", "completed", "failed", "cancelled"
]
TERMINAL = ("completed", "failed", "cancelled")
SiteOutcome = Literal["waiting", "answered", "refused", "missing", "rejected"]


def _now() -> datetime:
    return datetime.now(UTC)


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class RoundPlan(_Doc):
    round_id: str
    coordinator_config: str
    request: RoundRequest
    sites: tuple[str, ...] = Field(description="registered sites asked to synthesize; () with insecure: all")
    authenticated: bool
    min_sites: int = Field(ge=1)
    synthesis_timeout_s: float = Field(gt=0)
    evaluate_timeout_s: float = Field(gt=0)
    diagnosis_epochs: int = Field(ge=1)
    diagnosis_patience: int = Field(ge=1)
    seed: int = 0
    launched_by: str = Field("cli", description="the API token's name, or cli")
    foundation_folder: str | None = Field(None, description="where the round's foundation is read from")


class SiteResult(_Doc):
    synthesis: SiteOutcome = "waiting"
    reason: str = ""
    samples: int = 0
    privacy: PrivacySpend | None = None
    budget: BudgetStatus | None = None
    evaluation: SiteOutcome | None = None
    evaluation_reason: str = ""
    metrics: SiteMetricsReply | None = None
    asked_again: int = Field(0, description="messages sent again after Flower lost one or its reply")


class RoundReport(_Doc):
    round_id: str
    state: RoundState = "launched"
    message: str = ""
    flower_run_id: int | None = None
    reruns: int = Field(0, description="times the round was run again after its ServerApp died")
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    phases: dict[str, float] = Field(default_factory=dict, description="seconds spent in each state")
    sites: dict[str, SiteResult] = Field(default_factory=dict)
    pooled_dataset: str | None = None
    pooled_version: int | None = None
    pooled_class_counts: dict[str, int] | None = None
    model_sha256: str | None = None
    model_validation: dict[str, Any] | None = Field(
        default=None, description="the model scored on its pooled synthetic validation split"
    )
    progress: str = ""

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL


class CancelRequest(_Doc):
    by: str
    at: datetime = Field(default_factory=_now)


_ROUND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class RoundFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def of(cls, settings: CoordinatorSettings, round_id: str) -> RoundFolder:
        if not _ROUND_ID.match(round_id):
            raise RoundError(f"{round_id!r} is not a round id")
        return cls(rounds_root(settings) / round_id)

    @property
    def plan_path(self) -> Path:
        return self.folder / "plan.json"

    @property
    def report_path(self) -> Path:
        return self.folder / "round.json"

    def site_set(self, site_id: str) -> Path:
        return self.folder / "sites" / site_id

    @property
    def cancel_path(self) -> Path:
        return self.folder / "cancel.json"

    @property
    def model_dir(self) -> Path:
        return self.folder / "model"

    @property
    def figures(self) -> Path:
        return self.folder / "figures"

    @property
    def heartbeat_path(self) -> Path:
        return self.folder / ".serverapp-heartbeat"

    def beat(self, run_id: int) -> None:
        """The ServerApp of Flower run `run_id` is alive now (ServerAppHeartbeat writes it)."""
        tmp = self.heartbeat_path.with_name(f".{self.heartbeat_path.name}.tmp")
        tmp.write_text(str(run_id))
        tmp.replace(self.heartbeat_path)

    def heartbeat_age_s(self, run_id: int) -> float | None:
        """Seconds since the ServerApp of run `run_id` last said it was alive; None when no
        ServerApp of that run has said so yet (it is starting, or an older run wrote the file)."""
        try:
            if int(self.heartbeat_path.read_text()) != run_id:
                return None
            return time.time() - self.heartbeat_path.stat().st_mtime
        except (OSError, ValueError):
            return None

    def read_plan(self) -> RoundPlan:
        return _read(RoundPlan, self.plan_path)

    def read_report(self) -> RoundReport:
        return _read(RoundReport, self.report_path)

    def cancel_request(self) -> CancelRequest | None:
        """Who asked to cancel the round, if anyone did. The ServerApp checks it at every step."""
        if not self.cancel_path.exists():
            return None
        cancel: CancelRequest = _read(CancelRequest, self.cancel_path)
        return cancel

    def request_cancel(self, by: str) -> CancelRequest:
        cancel = self.cancel_request() or CancelRequest(by=by)
        _write(self.cancel_path, cancel)
        return cancel

    def write_plan(self, plan: RoundPlan) -> None:
        _write(self.plan_path, plan)

    def write_report(self, report: RoundReport) -> None:
        report.updated_at = _now()
        _write(self.report_path, report)


def rounds_root(settings: CoordinatorSettings) -> Path:
    return settings.paths.data / "rounds"


def list_rounds(settings: CoordinatorSettings) -> list[RoundReport]:
    root = rounds_root(settings)
    reports = []
    for path in sorted(root.glob("*/round.json")) if root.exists() else []:
        try:
            reports.append(RoundFolder(path.parent).read_report())
        except RoundError:
            continue  # a damaged report is shown by `rounds show`, not hidden in a list
    return sorted(reports, key=lambda r: r.created_at)


def _read(cls: type[_Doc], path: Path) -> Any:
    try:
        return cls.model_validate_json(path.read_text())
    except OSError:
        raise RoundError(f"{path} is missing: no such round") from None
    except ValidationError as exc:
        raise RoundError(describe_validation_error(exc, what=cls.__name__, source=str(path))) from None


def _write(path: Path, doc: _Doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(doc.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
