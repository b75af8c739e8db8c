"""The demo's round, run through the coordinator service the way its users would: an operator
launches and follows it over the API and publishes its pooled set and model; a researcher, with
only a researcher token, downloads the set and verifies it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.client.api import ApiClient
from coordinator.client.download import DownloadResult, download
from coordinator.config import CoordinatorSettings
from coordinator.errors import CoordinatorError
from coordinator.federation.rounds import RoundReport
from coordinator.service.database import Database
from coordinator.service.tokens import create_token

POLL_S = 1.0
RECORD_WAIT_S = 120.0  # the service records a round's pooled set and model within seconds


class DemoServiceError(CoordinatorError):
    """The demo's round could not be launched, followed or published through the service."""


@dataclass(frozen=True)
class DemoTokens:
    operator: str
    researcher: str


def make_tokens(settings: CoordinatorSettings) -> DemoTokens:
    """An operator's and a researcher's token, made as `coordinator tokens create` makes them."""
    database = Database.open(settings)
    try:
        with database.session() as session:
            return DemoTokens(
                operator=create_token(session, name="demo-operator", role="operator"),
                researcher=create_token(session, name="demo-researcher", role="researcher"),
            )
    finally:
        database.close()


def run_round(
    operator: ApiClient, body: dict[str, Any], deadline_s: float, on_update: Callable[[RoundReport], None]
) -> RoundReport:
    """POST /rounds, then follow GET /rounds/{id} until the round is finished."""
    report = RoundReport.model_validate(operator.post_json("/rounds", body))
    deadline = time.monotonic() + deadline_s
    seen = ""
    while not report.finished:
        if time.monotonic() > deadline:
            raise DemoServiceError(f"round {report.round_id} did not finish within {deadline_s:.0f} s")
        time.sleep(POLL_S)
        report = RoundReport.model_validate(operator.get_json(f"/rounds/{report.round_id}"))
        if report.model_dump_json() != seen:
            seen = report.model_dump_json()
            on_update(report)
    return report


def publish_and_download(
    operator: ApiClient, researcher_token: str, report: RoundReport, out: Path
) -> DownloadResult:
    """The operator publishes the round's pooled set and model once the service has recorded
    them; a researcher then downloads the set into `out`, verified file by file."""
    version, model = report.pooled_version, report.model_sha256
    deadline = time.monotonic() + RECORD_WAIT_S
    while True:
        datasets = {d["version"] for d in operator.get_json("/datasets")}
        models = {m["model_sha256"] for m in operator.get_json("/models")}
        if version in datasets and model in models:
            break
        if time.monotonic() > deadline:
            raise DemoServiceError("the service did not record the round's pooled set and model")
        time.sleep(POLL_S)
    operator.post_json(f"/datasets/pooled/{version}/publish")
    operator.post_json(f"/models/{model}/publish")
    with ApiClient(operator.server, researcher_token) as researcher:
        return download(researcher, f"/datasets/pooled/{version}", out)
