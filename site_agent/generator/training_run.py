"""`site-agent train`: plan a DP run, charge it to the ledger, train (or resume), record what ran.

This module only orchestrates; every epsilon is `shared.privacy.DPRun`'s answer.

    plan     DPRun.plan: delta, sample rate, steps, and the noise calibrated to the asked epsilon
    reserve  the budget checks the cap and the ledger charges the whole plan before the first step
    train    the backend, checkpointing its state and the accountant's history together
    complete the accountant's own count of steps is checked against the plan and recorded

A crash anywhere resumes with the same command: the reservation is found, the checkpoint loaded,
and the accountant continues from the steps it had recorded. Nothing is charged twice, and a run
that never finishes stays charged in full.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared.devices import choose_device
from shared.errors import FedsynthError
from shared.privacy import DPRun, decode_epsilon, encode_epsilon
from shared.process_lock import held_alone
from shared.schemas import GeneratorInfo, PrivacySpend
from site_agent.config import SiteSettings
from site_agent.errors import SiteRefusal
from site_agent.generator.backend import GeneratorBackend, GeneratorError, StepReport, TrainingPlan
from site_agent.generator.checkpoints import FileCheckpointer
from site_agent.generator.registry import new_backend
from site_agent.generator.review import write_review
from site_agent.generator.training_set import load_training_set
from site_agent.ingest.store import CaseStore
from site_agent.privacy.budget import reserve
from site_agent.privacy.ledger import Ledger, Run

RUN_CARD = "run.json"
PROGRESS_SECONDS = 0.5


class TrainingBlocked(SiteRefusal):
    """An unfinished run stands in the way of a new one."""

    reason = "not_ready"
    public_detail = "an unfinished training run of another round must be resumed or abandoned first"


class TrainingInProgress(TrainingBlocked):
    """Another process is training on this site right now."""

    public_detail = "another training run is in progress at this site"


@contextmanager
def _training_alone(settings: SiteSettings) -> Iterator[None]:
    """One training process at a time per site: a second `site-agent train`, or a round's, started
    while one runs would resume that live run and train and complete it twice. The OS drops the
    lock with its process, so a killed run can be resumed at once."""
    busy = TrainingInProgress(
        "another training run is in progress at this site (`site-agent train` or a round); "
        "wait for it to finish, or stop it and train again to resume it"
    )
    with held_alone(settings.paths.ledger.with_name(".training.lock"), lambda: busy):
        yield


@dataclass(frozen=True)
class TrainedRun:
    """What a finished run cost and produced; the run folder's `run.json`."""

    run_id: str
    round_id: str
    patients: int
    privacy: PrivacySpend
    generator: GeneratorInfo
    box: tuple[int, int, int]
    spacing_mm: float
    classes: tuple[str, ...]
    finished_at: str
    resumed: bool

    def write(self, folder: Path) -> None:
        data = {
            **asdict(self),
            "privacy": self.privacy.model_dump(),
            "generator": self.generator.model_dump(),
        }
        data["privacy"]["epsilon"] = encode_epsilon(self.privacy.epsilon)
        tmp = folder / f".{RUN_CARD}.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(folder / RUN_CARD)

    @classmethod
    def read(cls, folder: Path) -> TrainedRun:
        data = json.loads((folder / RUN_CARD).read_text())
        if "box" not in data:
            raise GeneratorError(
                f"run {folder.name} was trained on the first design's cube crop, which left some lesions "
                "outside; ingest the site's DICOM again into a new store and train a new run"
            )
        privacy = data.pop("privacy")
        privacy["epsilon"] = decode_epsilon(privacy["epsilon"])
        generator = GeneratorInfo(**data.pop("generator"))
        return cls(
            **{**data, "classes": tuple(data["classes"]), "box": tuple(data["box"])},
            privacy=PrivacySpend(**privacy),
            generator=generator,
        )


Progress = Callable[[StepReport, float], None]  # the step, and epsilon spent so far by this run


def train_generator(
    settings: SiteSettings,
    *,
    epsilon: float,
    epochs: float | None = None,
    round_id: str = "local",
    delta_ceiling: float | None = None,
    abandon: bool = False,
    progress: Progress | None = None,
) -> TrainedRun:
    """Train one generator at `epsilon` (inf: without DP, benchmarks only). `delta_ceiling` lowers
    the site's own delta ceiling for this run (a round may ask for a smaller delta, never a larger one)."""
    with _training_alone(settings):
        gen = settings.generator
        with CaseStore(settings.paths.store) as store:
            data = load_training_set(store, settings.classes)
        ceiling = (
            settings.privacy.delta if delta_ceiling is None else min(settings.privacy.delta, delta_ceiling)
        )
        backend = new_backend(settings, choose_device(settings.compute.device))
        # A backend that releases once reads every patient in a single step: the Gaussian mechanism.
        batch_size, run_epochs = (
            (len(data), 1.0) if backend.releases_once else (gen.batch_size, epochs or gen.epochs)
        )
        fresh = DPRun.plan(
            epsilon=epsilon,
            patients=len(data),
            batch_size=batch_size,
            epochs=run_epochs,
            delta_ceiling=ceiling,
            accountant=settings.privacy.accountant,
        )
        ledger = Ledger(settings.paths.ledger)
        run = _resumable(ledger, round_id=round_id, epsilon=epsilon, abandon=abandon)
        resumed = run is not None
        if run is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            run = reserve(
                settings,
                run_id=f"{round_id}-{stamp}",
                round_id=round_id,
                plan=fresh,
                max_grad_norm=gen.max_grad_norm,
            )
        # A resumed run trains exactly what was reserved, whatever the settings say now.
        dp = run.plan if run.private else fresh
        plan = TrainingPlan(
            mechanism=dp.mechanism,
            max_grad_norm=run.max_grad_norm,
            batch_size=batch_size,
            steps=dp.steps,
            accountant=dp.accountant,
            # From the OS's CSPRNG, never from anything that leaves the site: the batches and the DP
            # noise are drawn from generators seeded with it, and a seed an attacker could guess (it
            # was a 32-bit hash of the run id) would let them subtract the noise. A resumed run takes
            # its batch draws from its checkpoint and fresh noise from this new seed.
            seed=secrets.randbits(63),
        )

        folder = settings.paths.models / run.run_id
        checkpoints = FileCheckpointer(folder, every_seconds=gen.checkpoint_seconds)

        last_report = [0.0]

        def on_step(report: StepReport) -> None:
            # The accountant's answer costs milliseconds: ask it at most twice a second, not every step.
            now = time.monotonic()
            if progress is None or (now - last_report[0] < PROGRESS_SECONDS and report.step < report.steps):
                return
            last_report[0] = now
            progress(report, dp.epsilon_after(report.steps_charged))

        charged = backend.train(data, plan, checkpoints=checkpoints, on_step=on_step)
        if dp.private and charged != dp.steps:
            raise FedsynthError(f"the accountant recorded {charged} steps, the plan was {dp.steps}")
        weights_sha = backend.save(folder)
        privacy = dp.spend(max_grad_norm=run.max_grad_norm)
        write_review(backend, data=data, folder=folder / "review")
        result = TrainedRun(
            run_id=run.run_id,
            round_id=run.round_id,
            patients=len(data),
            privacy=privacy,
            generator=generator_info(backend, weights_sha),
            box=settings.preprocessing.box,
            spacing_mm=settings.preprocessing.spacing_mm,
            classes=settings.classes,
            finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
            resumed=resumed,
        )
        result.write(folder)
        ledger.complete(run.run_id, steps=privacy.steps, epsilon=privacy.epsilon)
        checkpoints.remove()
        return result


def generator_info(backend: GeneratorBackend, weights_sha256: str) -> GeneratorInfo:
    origin = backend.foundation()
    return GeneratorInfo(
        backend=backend.name,
        version=backend.version,
        weights_sha256=weights_sha256,
        foundation_id=None if origin is None else origin[0],
        foundation_sha256=None if origin is None else origin[1],
    )


def _resumable(ledger: Ledger, *, round_id: str, epsilon: float, abandon: bool) -> Run | None:
    unfinished = ledger.unfinished()
    if not unfinished:
        return None
    run = unfinished[-1]
    if abandon:
        ledger.abandon(r.run_id for r in unfinished)
        return None
    same_epsilon = (
        run.private and math.isfinite(epsilon) and math.isclose(run.planned_epsilon, epsilon, rel_tol=0.02)
    ) or (not run.private and not math.isfinite(epsilon))
    if run.round_id == round_id and same_epsilon:
        return run
    raise TrainingBlocked(
        f"run {run.run_id} (round {run.round_id}, epsilon {run.planned_epsilon:.2f}) did not finish. "
        "Run the same command again to resume it (its spend is already charged), or pass --abandon to "
        "give it up (its reserved spend stays charged) and start this one."
    )
