"""Training charges exactly the discriminator steps that ran on real data, and the cap holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from shared.privacy import DPRun, Mechanism, compose_epsilon
from site_agent.config import load_site_settings
from site_agent.generator.backend import StepReport, TrainingPlan
from site_agent.generator.checkpoints import FileCheckpointer
from site_agent.generator.registry import new_backend
from site_agent.generator.training_run import TrainingInProgress, train_generator
from site_agent.generator.training_set import load_training_set
from site_agent.ingest.store import CaseStore
from site_agent.privacy.budget import BudgetExceeded, current_spend
from site_agent.privacy.ledger import Ledger
from tests.site_agent.conftest import TrainedSite


def test_accountant_history_equals_the_real_batch_optimiser_steps_that_ran(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    settings = trained_site.settings
    with CaseStore(settings.paths.store) as store:
        data = load_training_set(store, settings.classes)
    backend = new_backend(settings, torch.device("cpu"))
    mechanism = Mechanism(noise_multiplier=1.1, sample_rate=4 / len(data), steps=7)
    plan = TrainingPlan(
        mechanism=mechanism, max_grad_norm=1.0, batch_size=4, steps=7, accountant="rdp", seed=3
    )

    discriminator_updates, generator_updates = [], []
    generator_params = {id(p) for p in backend.generator.parameters()}

    def count(optimizer: torch.optim.Optimizer, *_: object) -> None:
        if type(optimizer) is not torch.optim.Adam:
            return  # the DP wrapper calls the Adam it wraps: count the update once, there
        params = {id(p) for group in optimizer.param_groups for p in group["params"]}
        (generator_updates if params <= generator_params else discriminator_updates).append(1)

    reports: list[StepReport] = []
    handle = register_optimizer_step_post_hook(count)
    try:
        charged = backend.train(
            data, plan, checkpoints=FileCheckpointer(tmp_path, every_seconds=1e9), on_step=reports.append
        )
    finally:
        handle.remove()
    assert len(discriminator_updates) == 7 and len(generator_updates) == 7
    assert charged == 7 == reports[-1].steps_charged
    assert [r.steps_charged for r in reports] == list(range(1, 8))  # one charge per discriminator step
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["discriminator"]["accountant_history"] == [[1.1, 4 / len(data), 7]]


def test_a_finished_run_is_recorded_once_with_the_steps_the_accountant_counted(
    trained_site: TrainedSite,
) -> None:
    runs = Ledger(trained_site.settings.paths.ledger).runs()
    (run,) = runs.values()
    p = trained_site.run.privacy
    assert run.state == "complete" and run.steps == p.steps == run.planned_steps
    assert 3.9 < p.epsilon <= 4.0
    again = compose_epsilon(
        [Mechanism(p.noise_multiplier, p.sample_rate, p.steps)], delta=p.delta, accountant="rdp"
    )
    assert again == pytest.approx(p.epsilon)
    assert p.sample_rate == pytest.approx(4 / trained_site.run.patients)
    assert (trained_site.settings.paths.models / run.run_id / "review" / "montage.png").stat().st_size > 1000
    assert not (trained_site.settings.paths.models / run.run_id / "checkpoint.pt").exists()


def test_training_over_the_cap_is_refused_before_it_starts(trained_site: TrainedSite, tmp_path: Path) -> None:
    site = trained_site.copy(tmp_path / "site")
    settings = site.settings
    before = settings.paths.ledger.read_bytes()
    models_before = set(os.listdir(settings.paths.models))
    with pytest.raises(
        BudgetExceeded, match=r"over its cap of 10 .* remaining: 6\.0\d; the largest epsilon"
    ) as err:
        train_generator(settings, epsilon=20)
    fits = float(str(err.value).rsplit(" ", 1)[-1].rstrip("."))
    assert 5.0 < fits < 10
    assert settings.paths.ledger.read_bytes() == before  # nothing charged, nothing started
    assert set(os.listdir(settings.paths.models)) == models_before
    run = train_generator(settings, epsilon=fits)  # exactly what the refusal said still fits
    assert current_spend(settings).epsilon <= 10.0
    assert run.privacy.epsilon <= fits


def test_a_run_killed_mid_training_resumes_without_charging_twice(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    site = trained_site.copy(tmp_path / "site")
    config = site.config
    config.write_text(config.read_text().replace("checkpoint_seconds = 60.0", "checkpoint_seconds = 0.0"))
    settings = load_site_settings(config)
    spent_before = current_spend(settings).epsilon
    command = [
        sys.executable,
        "-m",
        "site_agent",
        "train",
        "--config",
        str(config),
        "--epsilon",
        "3",
        "--epochs",
        "3",  # enough steps that the first checkpoint comes well before the end
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        checkpoint = None
        deadline = time.monotonic() + 120
        while checkpoint is None and time.monotonic() < deadline and first.poll() is None:
            found = list(settings.paths.models.glob("local-*/checkpoint.pt"))
            checkpoint = found[0] if found else None
            time.sleep(0.05)
        assert checkpoint is not None, "training never wrote a checkpoint"
        # While it trains, no second training may start: it would resume this live run.
        ledger_while_training = settings.paths.ledger.read_bytes()
        with pytest.raises(TrainingInProgress, match="another training run is in progress at this site"):
            train_generator(settings, epsilon=3.0, epochs=3)
        assert settings.paths.ledger.read_bytes() == ledger_while_training
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.wait()
    assert first.returncode == -signal.SIGKILL
    (unfinished,) = Ledger(settings.paths.ledger).unfinished()
    charged_while_dead = current_spend(settings).epsilon
    assert charged_while_dead > spent_before  # the killed run stays charged in full

    second = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert second.returncode == 0, second.stderr
    assert "resumed" in second.stdout
    events = [json.loads(line) for line in settings.paths.ledger.read_text().splitlines()]
    mine = [e for e in events if e["run_id"] == unfinished.run_id]
    assert [e["event"] for e in mine] == ["reserve", "complete"]
    assert mine[1]["steps"] == unfinished.planned_steps
    assert current_spend(settings).epsilon == pytest.approx(charged_while_dead)  # nothing charged twice


def test_an_unfinished_run_blocks_a_different_one_until_resumed_or_abandoned(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    from site_agent.generator.training_run import TrainingBlocked

    site = trained_site.copy(tmp_path / "site")
    settings = site.settings
    ledger = Ledger(settings.paths.ledger)
    ledger.reserve(run_id="r7-x", round_id="r7", plan=DPRun(2.0, 0.2, 10, 1e-5, "rdp"), max_grad_norm=1.0)
    with pytest.raises(TrainingBlocked, match=r"r7-x .* did not finish"):
        train_generator(settings, epsilon=1.0, round_id="r8")
    run = train_generator(settings, epsilon=1.0, round_id="r8", abandon=True)
    runs = ledger.runs()
    assert runs["r7-x"].state == "abandoned" and runs[run.run_id].state == "complete"
    assert Mechanism(2.0, 0.2, 10) in [r.mechanism() for r in runs.values()]  # still charged
