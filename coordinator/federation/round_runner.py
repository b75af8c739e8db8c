"""One round, end to end, as the ServerApp runs it (DESIGN.md, "One round, end to end").

    synthesizing  if the round names a foundation: ask every selected site whether it holds it
                  (query.foundation) and send the files to those that do not; then send
                  query.synthesize to every site that holds it, collect until all answered or the
                  deadline; validate and store each set as it arrives
    pooling       build the next version of the pooled set (needs at least min_sites sets)
    training      train the shared diagnostic model on it
    evaluating    send the model to every site that answered; collect metrics until the deadline
    completed     report and figures written; or failed, with the reason, at any step

No wait is unbounded: every collection has a deadline, every message a TTL (`exchange` moves the
messages). A site that errs, goes offline, refuses or is late is named in the report with why, and
the round goes on without it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from flwr.serverapp import Grid

from coordinator.config import CoordinatorSettings, load_coordinator_settings
from coordinator.diagnosis.evaluation import evaluate_model
from coordinator.diagnosis.training import EpochReport, TrainOptions, train_model
from coordinator.federation.errors import RoundCancelled, RoundFailed
from coordinator.federation.exchange import Outgoing, Reply, exchange
from coordinator.federation.figures import save_montage, save_site_metrics
from coordinator.federation.pooling import PooledSet, build_pooled, store_site_set
from coordinator.federation.rounds import (
    RoundFolder,
    RoundPlan,
    RoundReport,
    RoundState,
    SiteOutcome,
    SiteResult,
)
from coordinator.federation.sites import list_sites
from coordinator.federation.validation import validate_synthetic
from shared.diagnosis.dataset import load_dataset
from shared.diagnosis.model_files import model_sha256
from shared.errors import FedsynthError
from shared.federation.messages import (
    EVALUATE,
    FOUNDATION,
    SYNTHESIZE,
    SiteAnswer,
    evaluate_request,
    foundation_offer,
    synthesize_request,
)
from shared.schemas import DatasetCard, EvaluateRequest
from shared.synthetic_set import verify_synthetic_set

log = logging.getLogger(__name__)

POLL_S = 1.0
CONNECT_WAIT_S = 60.0  # how long a selected site may take to come online once the round starts


class RoundRunner:
    def __init__(self, grid: Grid, folder: RoundFolder) -> None:
        self.grid = grid
        self.folder = folder
        self.plan: RoundPlan = folder.read_plan()
        self.settings: CoordinatorSettings = load_coordinator_settings(Path(self.plan.coordinator_config))
        self.report: RoundReport = folder.read_report()
        self._phase_started = time.monotonic()
        self._last_write = 0.0

    # --- state -----------------------------------------------------------------------------------

    def _enter(self, state: RoundState, message: str) -> None:
        now = time.monotonic()
        self.report.phases[self.report.state] = round(
            self.report.phases.get(self.report.state, 0.0) + now - self._phase_started, 1
        )
        self._phase_started = now
        self.report.state = state
        self.report.message = message
        self.report.progress = ""
        self._save()
        log.info("round %s: %s: %s", self.plan.round_id, state, message)

    def _save(self, *, throttle: bool = False) -> None:
        """Write the report; stop the round here if an operator has cancelled it meanwhile (every
        step saves often, so a cancel takes effect within about a second, even mid-training)."""
        now = time.monotonic()
        if throttle and now - self._last_write < 1.0:
            return
        self._last_write = now
        if not self.report.finished and (cancel := self.folder.cancel_request()) is not None:
            raise RoundCancelled(f"cancelled by {cancel.by}")
        self.folder.write_report(self.report)

    # --- the round -------------------------------------------------------------------------------

    def run(self) -> RoundReport:
        try:
            # A re-run (the ServerApp of an earlier attempt died: a SuperLink restart, a killed
            # process) goes on from the last step that finished, never repeating a pooling.
            pooled = self._pooled_earlier()
            nodes = self._targets(record_missing=pooled is None)
            if pooled is None:
                answered = self._synthesize(nodes)
                if len(answered) < self.plan.min_sites:
                    asked = len(self.report.sites)
                    raise RoundFailed(
                        f"{len(answered)} of {asked} sites sent a valid synthetic set; the round needs at "
                        f"least {self.plan.min_sites} (min_sites). " + self._missing_summary()
                    )
                pooled = self._pool(answered)
            digest = self._trained_earlier() or self._train(pooled)
            self._evaluate(nodes, digest)
            answered = [site for site, result in self.report.sites.items() if result.synthesis == "answered"]
            self._enter("completed", f"{len(answered)} sites contributed; " + self._missing_summary())
        except RoundFailed as exc:
            self._enter("failed", str(exc))
        except RoundCancelled as exc:
            self._enter("cancelled", str(exc))
        except Exception as exc:  # the report must never be left mid-state
            log.error("round %s failed:\n%s", self.plan.round_id, traceback.format_exc())
            self._enter("failed", f"internal error at the coordinator: {type(exc).__name__}: {exc}")
        return self.report

    def _missing_summary(self) -> str:
        missing = [
            f"{site}: {result.synthesis} ({result.reason})"
            for site, result in sorted(self.report.sites.items())
            if result.synthesis != "answered"
        ]
        return "Missing: " + "; ".join(missing) + "." if missing else "No site missing."

    def _pooled_earlier(self) -> PooledSet | None:
        """The pooled set an earlier attempt of this round built, if it is whole."""
        if self.report.pooled_version is None or not self.report.pooled_dataset:
            return None
        folder = Path(self.report.pooled_dataset)
        try:
            verify_synthetic_set(folder)
            card = DatasetCard.read(folder / "card.json")
        except FedsynthError:
            return None
        self._enter(
            "pooling", f"resuming from pooled set v{self.report.pooled_version} of an earlier attempt"
        )
        return PooledSet(folder, self.report.pooled_version, card)

    def _trained_earlier(self) -> str | None:
        """The model an earlier attempt trained, if it is whole; else None (and its remains go)."""
        recorded = self.report.model_sha256
        model = self.folder.model_dir
        if recorded is not None and model.is_dir() and (self.folder.figures / "montage.png").is_file():
            with contextlib.suppress(FedsynthError, OSError):
                if model_sha256(model) == recorded:
                    return recorded
        shutil.rmtree(model, ignore_errors=True)
        self.report.model_sha256 = None
        return None

    def _targets(self, *, record_missing: bool = True) -> dict[int, str]:
        """Node id -> site id of the sites asked, waiting briefly for them to come online. Sites
        that are not are recorded as missing, unless an earlier attempt of the round recorded
        what they did (`record_missing` False)."""
        if self.plan.authenticated:
            registry = list_sites(self.settings)
            wanted = {registry[s].node_id: s for s in self.plan.sites if s in registry}
            for site in self.plan.sites:
                if site not in registry and record_missing:
                    self.report.sites[site] = SiteResult(synthesis="missing", reason="not registered")
        else:
            wanted = {}
        self.report.message = "waiting for the sites to come online"
        self._save()
        deadline = time.monotonic() + min(CONNECT_WAIT_S, self.plan.synthesis_timeout_s)
        while True:
            online = set(self.grid.get_node_ids())
            if not self.plan.authenticated:
                # Without authentication the coordinator cannot tell sites apart before they answer.
                return {node: f"node-{node}" for node in sorted(online)}
            if set(wanted) <= online or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        targets = {}
        for node, site in wanted.items():
            if node in online:
                targets[node] = site
            elif record_missing:
                self.report.sites[site] = SiteResult(
                    synthesis="missing", reason="not connected when the round started"
                )
        return targets

    def _synthesize(self, nodes: dict[int, str]) -> list[str]:
        request = self.plan.request
        for site in nodes.values():
            self.report.sites[site] = SiteResult()
        self._enter(
            "synthesizing",
            f"asking {len(nodes)} sites for {request.per_class} samples per class at "
            f"epsilon {request.epsilon:g}",
        )
        nodes = self._distribute(nodes)
        answered: list[str] = []

        def handle(reply: Reply) -> None:
            result, answer = self._result_of(reply)
            if answer is not None:
                try:
                    items = validate_synthetic(answer, request, reply.site_id)
                    assert answer.manifest is not None
                    target = self.folder.site_set(reply.site_id)
                    shutil.rmtree(target, ignore_errors=True)  # an earlier attempt's copy: replaced
                    store_site_set(target, items, answer.manifest, request)
                except FedsynthError as exc:  # ReplyRejected, or a set that cannot be written
                    result.synthesis, result.reason = "rejected", str(exc)
                else:
                    result.synthesis, result.samples = "answered", len(items)
                    result.privacy = answer.manifest.privacy
                    answered.append(reply.site_id)
            self._save()

        outgoing = Outgoing(SYNTHESIZE, synthesize_request(request), self.plan.synthesis_timeout_s)
        self._exchange(nodes, outgoing, handle, "synthesis")
        return answered

    def _result_of(self, reply: Reply) -> tuple[SiteResult, SiteAnswer | None]:
        """The replying site's result, with the budget the reply reports, and the site's answer; an
        answer of None means the site declined or did not answer, and the result says why."""
        result = self.report.sites.setdefault(reply.site_id, SiteResult())
        answer = reply.answer
        if answer is not None and answer.budget is not None:
            result.budget = answer.budget
        if (declined := _declined(reply)) is not None:
            result.synthesis, result.reason = declined
            return result, None
        return result, answer

    def _distribute(self, nodes: dict[int, str]) -> dict[int, str]:
        """The sites that hold the round's foundation, once each that lacked it has been sent it.
        A site sent it only if it says it lacks it: sites cache foundations by sha256."""
        request = self.plan.request
        if request.foundation_id is None:
            return nodes
        holders: dict[int, str] = {}
        lacking: dict[int, str] = {}

        def handle(reply: Reply) -> None:
            result, answer = self._result_of(reply)
            if answer is not None:  # else the site declined or did not answer: its result says why
                held = answer.foundation
                if (
                    held is None
                    or held.foundation_sha256 != request.foundation_sha256
                    or held.site_id != reply.site_id
                ):
                    result.synthesis, result.reason = "rejected", "its foundation answer is about another one"
                elif held.held:
                    holders[reply.node_id] = reply.site_id
                else:
                    lacking[reply.node_id] = reply.site_id
            self._save()

        timeout = self.plan.synthesis_timeout_s
        self.report.message = (
            f"asking {len(nodes)} sites whether they hold the foundation {request.foundation_id}"
        )
        self._exchange(
            dict(nodes), Outgoing(FOUNDATION, foundation_offer(request, None), timeout), handle, "foundation"
        )
        if lacking:
            files = self._foundation_files()
            sent, lacking = lacking, {}
            self.report.message = (
                f"sending the foundation {request.foundation_id} to {', '.join(sorted(sent.values()))}"
            )
            self._exchange(
                sent, Outgoing(FOUNDATION, foundation_offer(request, files), timeout), handle, "foundation"
            )
            for site in lacking.values():
                self.report.sites[site] = SiteResult(
                    synthesis="rejected", reason="it was sent the foundation and still lacks it"
                )
        return holders

    def _foundation_files(self) -> dict[str, bytes]:
        from shared.foundation.files import foundation_files, foundation_sha256

        assert self.plan.foundation_folder is not None
        folder = Path(self.plan.foundation_folder)
        if foundation_sha256(folder) != self.plan.request.foundation_sha256:
            raise RoundFailed(
                f"the foundation {self.plan.request.foundation_id} has changed since the round was planned"
            )
        return foundation_files(folder)

    def _pool(self, answered: list[str]) -> PooledSet:
        self._enter("pooling", f"pooling the sets of {', '.join(sorted(answered))}")
        sets = [self.folder.site_set(s) for s in sorted(answered)]
        pooled = build_pooled(self.settings, sets, self.plan.request)
        self.report.pooled_dataset = str(pooled.folder)
        self.report.pooled_version = pooled.version
        self.report.pooled_class_counts = pooled.card.class_counts
        return pooled

    def _train(self, pooled: PooledSet) -> str:
        """Train the diagnostic model on the pooled set, draw its figures; return the model's sha256."""
        self._enter("training", f"training the diagnostic model on pooled set v{pooled.version}")

        def progress(epoch: EpochReport) -> None:
            self.report.progress = f"epoch {epoch.epoch}/{self.plan.diagnosis_epochs}"
            self._save(throttle=True)

        options = TrainOptions(  # the default task: the class segmenter, whose case head gives the class
            epochs=self.plan.diagnosis_epochs,
            patience=self.plan.diagnosis_patience,
            seed=self.plan.seed,
        )
        train_model(pooled.folder, self.folder.model_dir, options, progress)
        digest = model_sha256(self.folder.model_dir)
        self.report.model_sha256 = digest
        figures = self.folder.figures
        figures.mkdir(parents=True, exist_ok=True)
        validation = evaluate_model(self.folder.model_dir, pooled.folder, plots=figures)
        self.report.model_validation = {
            k: validation[k] for k in ("macro_auc", "accuracy", "balanced_accuracy")
        }
        save_montage(load_dataset(pooled.folder), figures / "montage.png")
        return digest

    def _evaluate(self, nodes: dict[int, str], digest: str) -> None:
        """Every site that answered the synthesis request (with a set or a refusal) scores the model."""
        evaluators = {
            node: site
            for node, site in nodes.items()
            if site in self.report.sites and self.report.sites[site].synthesis in ("answered", "refused")
        }
        self._enter(
            "evaluating", f"sending the model to {len(evaluators)} sites for evaluation on their real data"
        )
        files = {p.name: p.read_bytes() for p in sorted(self.folder.model_dir.iterdir()) if p.is_file()}
        request = EvaluateRequest(round_id=self.plan.round_id, model_sha256=digest)
        metrics = {}

        def handle(reply: Reply) -> None:
            result = self.report.sites[reply.site_id]
            answer = reply.answer
            if answer is not None and answer.budget is not None:
                result.budget = answer.budget
            if (declined := _declined(reply)) is not None or answer is None:
                result.evaluation, result.evaluation_reason = declined or ("missing", reply.error)
            elif (
                answer.metrics is None
                or answer.metrics.model_sha256 != digest
                or answer.metrics.site_id != reply.site_id
            ):
                result.evaluation, result.evaluation_reason = "rejected", "metrics for another model or site"
            else:
                result.evaluation, result.metrics = "answered", answer.metrics
                metrics[reply.site_id] = answer.metrics
            self._save()

        outgoing = Outgoing(EVALUATE, evaluate_request(request, files), self.plan.evaluate_timeout_s)
        self._exchange(evaluators, outgoing, handle, "evaluation")
        if metrics:
            save_site_metrics(metrics, self.folder.figures / "site_metrics.png")

    # --- messaging -------------------------------------------------------------------------------

    def _exchange(
        self, nodes: dict[int, str], outgoing: Outgoing, handle: Callable[[Reply], None], what: str
    ) -> None:
        """One phase's messages (see `exchange`), with the report kept up to date as replies come."""

        def on_reply(reply: Reply) -> None:
            asked_as = nodes[reply.node_id]
            if asked_as != reply.site_id:  # an unauthenticated site gave its own name: go by it
                self.report.sites.pop(asked_as, None)
                nodes[reply.node_id] = reply.site_id
            handle(reply)
            if reply.asks > 1:
                self.report.sites[reply.site_id].asked_again += reply.asks - 1
                self._save()

        def on_progress(done: int, asked: int) -> None:
            self.report.progress = f"{what}: {done}/{asked} sites answered"
            self._save(throttle=True)

        exchange(
            self.grid,
            nodes,
            outgoing,
            authenticated=self.plan.authenticated,
            on_reply=on_reply,
            on_progress=on_progress,
        )


def _declined(reply: Reply) -> tuple[SiteOutcome, str] | None:
    """How a reply without an answer ended: (missing, why) or (refused, the site's reason)."""
    if reply.answer is None:
        return "missing", reply.error
    if reply.answer.refusal is not None:
        return "refused", f"{reply.answer.refusal.reason}: {reply.answer.refusal.detail}"
    return None


def run_round(grid: Grid, round_dir: Path) -> RoundReport:
    return RoundRunner(grid, RoundFolder(round_dir)).run()
