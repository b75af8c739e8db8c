"""The budget, train and sample commands as a hospital runs them: separate processes, plain output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TinyFoundation
from tests.site_agent.conftest import TrainedSite
from tests.site_agent.test_cli import site_agent


def test_budget_json_reports_what_the_ledger_composes(trained_site: TrainedSite) -> None:
    result = site_agent("budget", "--config", str(trained_site.config), "--json")
    assert result.returncode == 0, result.stderr
    budget = json.loads(result.stdout)
    assert budget["epsilon_spent"] == pytest.approx(trained_site.run.privacy.epsilon)
    assert budget["epsilon_remaining"] == pytest.approx(10 - trained_site.run.privacy.epsilon)
    assert (budget["runs"], budget["releases"], budget["accountant"]) == (1, 0, "rdp")


def test_training_over_the_cap_is_refused_in_one_line_naming_the_setting(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    site = trained_site.copy(tmp_path / "site")
    result = site_agent("train", "--config", str(site.config), "--epsilon", "50")
    assert result.returncode == 2
    assert "over its cap of 10 (site.toml [privacy] epsilon_cap)" in result.stderr
    assert "Traceback" not in result.stderr


def test_sample_writes_a_set_and_the_audit_beside_it(trained_site: TrainedSite, tmp_path: Path) -> None:
    site = trained_site.copy(tmp_path / "site")
    out = tmp_path / "review-set"
    result = site_agent("sample", str(out), "--config", str(site.config), "--per-class", "1")
    assert result.returncode == 0, result.stderr
    assert "Memorisation audit passed" in result.stdout
    assert len(list((out / "images").iterdir())) == 6
    audit = json.loads((tmp_path / "review-set.audit.json").read_text())
    assert audit["passed"] and audit["samples"] == 6
    assert audit["reference"] in ("holdout", "train-leave-one-out")
    assert not (out / "audit.json").exists()  # the audit is about patients: never inside a set


def test_a_hospital_trains_lesionstats_from_its_settings_file_in_one_release(
    trained_site: TrainedSite, tiny_foundation: TinyFoundation, tmp_path: Path
) -> None:
    site = trained_site.copy(tmp_path / "site")
    text = site.config.read_text()
    assert 'backend = "dpgan3d"' in text and "# foundation = (not set)" in text
    text = text.replace('backend = "dpgan3d"', 'backend = "lesionstats"')
    text = text.replace("# foundation = (not set)", f'foundation = "{tiny_foundation.folder}"')
    text = text.replace("sampling_steps = 50", "sampling_steps = 5")
    site.config.write_text(text)
    result = site_agent("train", "--config", str(site.config), "--epsilon", "2")
    assert result.returncode == 0, result.stderr
    assert "Trained generator lesionstats" in result.stdout
    assert "sample rate 1.000, 1 steps" in result.stdout  # one release over every patient
