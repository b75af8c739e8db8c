"""A site scores a model on its held-out real cases and returns metrics only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shared.classes import DEFAULT_CLASSES
from shared.diagnosis.bundle import DiagnosticModel, save_model
from shared.diagnosis.metrics import MIN_CASES
from shared.diagnosis.networks import build_classifier
from site_agent.evaluation import evaluate_on_holdout
from site_agent.ingest.store import CaseStore
from tests.conftest import TEST_BOX, TEST_SPACING_MM
from tests.site_agent.conftest import TrainedSite


def test_the_reply_has_metrics_of_the_held_out_cases_and_nothing_that_names_a_case(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    metadata = {
        "task": "classify",
        "classes": list(DEFAULT_CLASSES),
        "input": {"box": list(TEST_BOX), "spacing_mm": [TEST_SPACING_MM] * 3},
    }
    save_model(model_dir, DiagnosticModel(build_classifier(box=TEST_BOX, classes=6), None, metadata))
    settings = trained_site.settings
    reply = evaluate_on_holdout(settings, model_dir, round_id="r1")
    with CaseStore(settings.paths.store) as store:
        cases = store.all_latest()
    held_out = [c for c in cases if c.split == "holdout" and c.label is not None]
    assert reply.cases == len(held_out) > 0
    for k, name in enumerate(DEFAULT_CLASSES):
        assert sum(reply.confusion[k]) == sum(c.label == name for c in held_out)
        assert reply.per_class[name].cases == sum(c.label == name for c in held_out)
    # A handful of held-out patients: every site-level figure says it was not estimated, and why.
    assert reply.cases < MIN_CASES
    for figure in (reply.macro_auc, reply.accuracy, reply.balanced_accuracy):
        assert figure.value is None and figure.cases == reply.cases and "needed" in str(figure.note)
        assert figure.text().startswith("n/a")
    text = reply.to_json()
    assert not any(c.case_id in text or str(c.patient) in text or c.fingerprint in text for c in cases)
    assert str(settings.paths.store) not in text


def test_a_model_for_another_box_is_refused_by_name(trained_site: TrainedSite, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    metadata = {
        "task": "classify",
        "classes": list(DEFAULT_CLASSES),
        "input": {"box": [32, 32, 32], "spacing_mm": [4.0] * 3},
    }
    save_model(model_dir, DiagnosticModel(build_classifier(box=(32, 32, 32), classes=6), None, metadata))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "site_agent",
            "evaluate",
            str(model_dir),
            "--config",
            str(trained_site.config),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "takes 32x32x32 boxes; this site stores 32x32x48" in result.stderr
