"""`coordinator rounds launch`: plan a round, start its Flower run, and follow it to the end.

The plan is written to the round's folder first, then `flwr run` starts the ServerApp on the
SuperLink with that folder as its only run-config value. Following a round means reading its
report as the ServerApp rewrites it, and asking Flower whether the run is still alive: a ServerApp
that dies leaves the round marked failed with the reason, never stuck.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from coordinator.config import CoordinatorSettings
from coordinator.federation.errors import FederationError, RoundError
from coordinator.federation.flower_app import write_app
from coordinator.federation.flower_cli import CONNECTION, flower_home, flwr
from coordinator.federation.heartbeat import SILENT_S
from coordinator.federation.round_order import RoundOrder
from coordinator.federation.rounds import RoundFolder, RoundPlan, RoundReport, RoundState
from coordinator.federation.sites import list_sites
from coordinator.foundation.catalogue import ListedFoundation, find_foundation
from shared.crop_box import box_text
from shared.process_lock import held_alone
from shared.schemas import RoundRequest

FOLLOW_POLL_S = 1.0
RUN_CHECK_S = 5.0
QUIET_S = 15.0  # a round whose report has not changed for this long is checked with Flower
START_LIMIT_S = 180.0  # a run Flower has not started by then will not start
UNREACHABLE_LIMIT_S = 60.0
MAX_RERUNS = 2  # a round whose ServerApp dies is run again this many times before it fails


def plan_round(
    settings: CoordinatorSettings,
    config_file: Path,
    order: RoundOrder,
    *,
    seed: int = 0,
    launched_by: str = "cli",
) -> RoundFolder:
    fed = settings.federation
    round_id = order.round_id or "round-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    folder = RoundFolder.of(settings, round_id)
    if folder.folder.exists():
        raise RoundError(f"round {round_id!r} already exists in {folder.folder}; choose another --round-id")
    authenticated = not fed.insecure
    chosen: tuple[str, ...] = ()
    if authenticated:
        registered = list_sites(settings)
        if not registered:
            raise FederationError("no site is registered yet: add sites with `coordinator sites add`")
        unknown = sorted(set(order.sites or ()) - set(registered))
        if unknown:
            raise FederationError(
                f"--sites: {', '.join(unknown)} not registered (known: {', '.join(registered)})"
            )
        chosen = tuple(order.sites or sorted(registered))
    wanted_min = order.min_sites if order.min_sites is not None else fed.min_sites
    if authenticated and wanted_min > len(chosen):
        raise FederationError(
            f"the round asks {len(chosen)} sites but needs {wanted_min} answers (--min-sites / min_sites)"
        )
    synthesis_timeout = order.timeout_s if order.timeout_s is not None else fed.round_timeout_s
    foundation = None if order.foundation is None else _fitting_foundation(settings, order)
    request = RoundRequest(
        round_id=round_id,
        epsilon=order.epsilon,
        delta=order.delta,
        per_class=order.per_class,
        classes=settings.classes,
        volume_shape=order.box,
        spacing_mm=(order.spacing_mm,) * 3,
        timeout_s=synthesis_timeout,
        generator=order.generator,
        foundation_id=None if foundation is None else foundation.foundation_id,
        foundation_sha256=None if foundation is None else foundation.sha256,
    )
    plan = RoundPlan(
        round_id=round_id,
        coordinator_config=str(config_file.resolve()),
        request=request,
        sites=chosen,
        authenticated=authenticated,
        min_sites=wanted_min,
        synthesis_timeout_s=synthesis_timeout,
        evaluate_timeout_s=fed.evaluate_timeout_s,
        diagnosis_epochs=fed.diagnosis_epochs,
        diagnosis_patience=fed.diagnosis_patience,
        seed=seed,
        launched_by=launched_by,
        foundation_folder=None if foundation is None else str(foundation.folder),
    )
    folder.write_plan(plan)
    folder.write_report(RoundReport(round_id=round_id, message="waiting for Flower to start the run"))
    return folder


def _fitting_foundation(settings: CoordinatorSettings, order: RoundOrder) -> ListedFoundation:
    """The foundation the order names, once it is known to draw the round's box and spacing."""
    assert order.foundation is not None
    foundation = find_foundation(settings, order.foundation)
    box, spacing_mm = foundation.card.draws
    if box != tuple(order.box) or spacing_mm != order.spacing_mm:
        raise RoundError(
            f"the foundation {order.foundation} draws {box_text(box)} boxes at {spacing_mm:g} mm, "
            f"the round asks {box_text(order.box)} at {order.spacing_mm:g} mm: train one at the round's box "
            "(coordinator foundation train --box) and add it (coordinator foundation add)"
        )
    return foundation


def launch_round(
    settings: CoordinatorSettings, config_file: Path, order: RoundOrder, *, launched_by: str = "cli"
) -> RoundFolder:
    """Plan a round and start its Flower run (what `rounds launch` and `POST /rounds` do). A run
    that cannot be started leaves the round failed with Flower's reason, and the error is raised."""
    folder = plan_round(settings, config_file, order, launched_by=launched_by)
    try:
        start_run(settings, folder)
    except FederationError as exc:
        end_round(folder, "failed", f"its Flower run could not be started: {exc}")
        raise
    return folder


def start_run(settings: CoordinatorSettings, folder: RoundFolder) -> int:
    app = write_app(flower_home(settings) / "app")
    answer = flwr(
        settings, "run", str(app), CONNECTION, "--run-config", f"round-dir={json.dumps(str(folder.folder))}"
    )
    run_id = int(answer["run-id"])
    report = folder.read_report()
    report.flower_run_id = run_id
    folder.write_report(report)
    return run_id


def follow(
    settings: CoordinatorSettings, folder: RoundFolder, on_update: Callable[[RoundReport], None] | None = None
) -> RoundReport:
    """Wait for the round to complete or fail; call `on_update` with each new report."""
    started = time.monotonic()
    followed_run: int | None = None
    last_check = 0.0
    reachable_at = started
    seen = None
    while True:
        report = folder.read_report()
        if on_update is not None and report.model_dump_json() != seen:
            seen = report.model_dump_json()
            on_update(report)
        if report.finished:
            return report
        now = time.monotonic()
        run_id = report.flower_run_id
        if run_id != followed_run:  # a re-run: its start is timed from now
            followed_run, started = run_id, now
        if run_id is not None and is_quiet(folder, report) and now - last_check >= RUN_CHECK_S:
            last_check = now
            try:
                status = run_status(settings, run_id)
                reachable_at = now
            except FederationError:
                # The SuperLink's ServerApp dies with it: a SuperLink gone for long ends the round.
                if now - reachable_at > UNREACHABLE_LIMIT_S:
                    return end_round(folder, "failed", "the SuperLink stopped answering during the round")
                continue
            if settle(settings, folder, status).finished:
                continue
            if status in ("pending", "starting") and now - started > START_LIMIT_S:
                flwr(settings, "stop", str(run_id), CONNECTION)
                return end_round(
                    folder, "failed", f"Flower did not start the round within {START_LIMIT_S:.0f} s"
                )
        time.sleep(FOLLOW_POLL_S)


def is_quiet(folder: RoundFolder, report: RoundReport) -> bool:
    """Whether nothing has shown the round's ServerApp alive lately: its report has not changed
    for QUIET_S and its heartbeat (heartbeat.py) is missing or older than SILENT_S. A live
    ServerApp rewrites the report every second or so while it waits for sites, every epoch while
    it trains, and the heartbeat every 2 s, so only a quiet round is worth asking Flower about:
    each `flwr` call is a process start, a second of a core."""
    if (datetime.now(UTC) - report.updated_at).total_seconds() < QUIET_S:
        return False
    age = folder.heartbeat_age_s(report.flower_run_id) if report.flower_run_id is not None else None
    return age is None or age > SILENT_S


def reconcile(settings: CoordinatorSettings, folder: RoundFolder) -> RoundReport:
    """A round's report, corrected if nothing is running it any more: a Flower run that ended
    without finishing it (a ServerApp or SuperLink that died mid-round, or a run stopped by a
    cancel) or a launch interrupted before its run started. Such a round is marked failed with the
    reason (or cancelled), never left looking as if it were still running. Asks Flower only about
    rounds not yet finished."""
    report = folder.read_report()
    if report.finished:
        return report
    if report.flower_run_id is None:
        return settle(settings, folder, None)
    status = run_status(settings, report.flower_run_id)  # FederationError: the SuperLink is down
    return settle(settings, folder, status)


def settle(settings: CoordinatorSettings, folder: RoundFolder, status: str | None) -> RoundReport:
    """Settle a round that nothing runs any more, given its Flower run's status (None: no run).
    A ServerApp that died mid-round (a SuperLink restart, a killed process) has its round run
    again under the same round id, up to MAX_RERUNS times; otherwise the round ends failed or
    cancelled, with the reason."""
    report = folder.read_report()  # the ServerApp may have finished it meanwhile
    if report.finished:
        return report
    cancel = folder.cancel_request()
    if status is None:
        if cancel is not None:
            return end_round(folder, "cancelled", f"cancelled by {cancel.by} before its Flower run started")
        if (datetime.now(UTC) - report.updated_at).total_seconds() > START_LIMIT_S:
            return end_round(folder, "failed", "the launch was interrupted before its Flower run started")
        return report
    if status.startswith("finished"):
        if cancel is not None:
            return end_round(folder, "cancelled", f"cancelled by {cancel.by}")
        why = f"the ServerApp ended ({status}) before the round finished"
        if status == "finished:failed" and report.reruns < MAX_RERUNS:
            return rerun(settings, folder, report.flower_run_id, why)
        return end_round(folder, "failed", f"{why}; see `flwr log`")
    age = folder.heartbeat_age_s(report.flower_run_id) if report.flower_run_id is not None else None
    if age is not None and age > SILENT_S:
        # Flower still calls the run running, but its ServerApp has stopped beating: dead (a
        # SuperLink restart, a killed process), which Flower would notice only in 30 to 60 s.
        with contextlib.suppress(FederationError):
            flwr(settings, "stop", str(report.flower_run_id), CONNECTION)
        if cancel is not None:
            return end_round(folder, "cancelled", f"cancelled by {cancel.by}")
        why = f"the ServerApp stopped answering (no heartbeat for {age:.0f} s) before the round finished"
        if report.reruns < MAX_RERUNS:
            return rerun(settings, folder, report.flower_run_id, why)
        return end_round(folder, "failed", f"{why}; see `flwr log`")
    return report


def rerun(settings: CoordinatorSettings, folder: RoundFolder, dead_run: int | None, why: str) -> RoundReport:
    """Start the round again in a new Flower run: the ServerApp goes on from the last step that
    finished (RoundRunner.run), and a site asked again sends the set it already released, without
    training or spending again. Whoever notices first (`rounds follow`, the service's watcher)
    does it, once: the others find the lock held, or the run already replaced."""
    busy = RoundError("another process is re-running this round")
    try:
        with held_alone(folder.folder / ".rerun.lock", lambda: busy):
            report = folder.read_report()
            if report.finished or report.flower_run_id != dead_run:
                return report  # finished, or re-run already
            report.reruns += 1
            report.message = (
                f"{why}: running it again under the same round id (re-run {report.reruns} of "
                f"{MAX_RERUNS}); sites that answered send the same set again, spending nothing"
            )
            folder.write_report(report)
            try:
                start_run(settings, folder)
            except FederationError as exc:
                return end_round(folder, "failed", f"{why}, and it could not be run again: {exc}")
            return folder.read_report()
    except RoundError:
        return folder.read_report()


def cancel_round(settings: CoordinatorSettings, folder: RoundFolder, *, by: str) -> RoundReport:
    """Ask a round to stop. The ServerApp sees the request within about a second and ends the round
    as cancelled; the Flower run is stopped too, so a ServerApp that cannot answer is ended by
    Flower. Budget the sites already spent stays spent: a site's ledger never gives any back."""
    report = folder.read_report()
    if report.finished:
        raise RoundError(f"round {report.round_id} is {report.state} already; there is nothing to cancel")
    folder.request_cancel(by)
    if report.flower_run_id is not None:
        # Already ended, or the SuperLink is down: reconciling finishes the round later.
        with contextlib.suppress(FederationError):
            flwr(settings, "stop", str(report.flower_run_id), CONNECTION)
    try:
        return reconcile(settings, folder)
    except FederationError:
        return folder.read_report()


def run_status(settings: CoordinatorSettings, run_id: int) -> str:
    answer = flwr(settings, "ls", CONNECTION, "--run-id", str(run_id))
    runs = answer.get("runs", [])
    return str(runs[0].get("status", "unknown")) if runs else "unknown"


def end_round(folder: RoundFolder, state: RoundState, message: str) -> RoundReport:
    report = folder.read_report()
    report.state, report.message = state, message
    folder.write_report(report)
    return report
