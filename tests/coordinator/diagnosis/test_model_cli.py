"""phantom-dataset -> model train -> model evaluate, as the operator runs them (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from shared.diagnosis.dataset import load_dataset
from shared.synthetic_set import verify_synthetic_set
from tests.conftest import TEST_BOX, TEST_SPACING_MM


def coordinator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordinator", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def phantom_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("phantom-datasets")
    train, test = root / "train", root / "external"
    size = ("--box", ",".join(map(str, TEST_BOX)), "--spacing-mm", str(TEST_SPACING_MM))
    made = coordinator(
        "phantom-dataset", str(train), "--cases", "12", "--seed", "3", "--profile", "site_a", *size
    )
    assert made.returncode == 0, made.stderr
    made = coordinator(
        "phantom-dataset", str(test), "--cases", "12", "--seed", "4", "--profile", "external", *size
    )
    assert made.returncode == 0, made.stderr
    return train, test


def test_phantom_dataset_is_a_verified_set_in_the_shared_layout(phantom_sets: tuple[Path, Path]) -> None:
    train, _ = phantom_sets
    assert verify_synthetic_set(train) == 3 + 2 * 12  # dataset.json, card.json, labels.csv, images, masks
    data = load_dataset(train)
    assert data.images.shape == (12, *TEST_BOX) and data.masks.shape == (12, *TEST_BOX)
    assert data.images.min() >= -1 and data.images.max() <= 1
    assert sorted(set(data.labels.tolist())) == list(range(6))  # balanced: every class present
    lesions = [data.masks[i].sum() for i in range(12) if data.card.classes[data.labels[i]] != "normal"]
    assert all(v > 0 for v in lesions)  # the box holds every lesion (issue 14)
    again = coordinator("phantom-dataset", str(train), "--cases", "6")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_train_then_evaluate_writes_a_readable_card_report_and_plots(
    phantom_sets: tuple[Path, Path], tmp_path: Path
) -> None:
    train, test = phantom_sets
    model = tmp_path / "model"
    trained = coordinator(
        "model", "train", str(train), "--out", str(model), "--task", "both", "--epochs", "2"
    )
    assert trained.returncode == 0, trained.stderr
    metadata = json.loads((model / "metadata.json").read_text())
    assert metadata["classes"][0] == "normal" and metadata["input"]["box"] == list(TEST_BOX)
    assert metadata["training"]["dataset_id"] == json.loads((train / "card.json").read_text())["dataset_id"]
    assert metadata["training"]["epochs_run"] == 2 and set(metadata["weights_sha256"]) == {
        "classifier",
        "segmenter",
        "head",
    }
    assert metadata["training"]["case_head"]["cases"] > 0
    assert load_file(str(model / "classifier.safetensors"))  # plain tensors, no pickle
    assert not list(model.glob("*.pt")) and not list(model.glob("*.pkl"))

    report_path, plots = tmp_path / "report.json", tmp_path / "plots"
    scored = coordinator(
        "model", "evaluate", str(model), str(test), "--json", str(report_path), "--plots", str(plots)
    )
    assert scored.returncode == 0, scored.stderr
    assert "macro auc" in scored.stdout
    report = json.loads(report_path.read_text())
    assert report["cases"] == 12 and sum(map(sum, report["confusion"])) == 12
    macro = report["macro_auc"]
    assert 0 <= macro["value"] <= 1 and macro["ci95_low"] <= macro["value"] <= macro["ci95_high"]
    assert set(report["per_class"]["thymoma"]) >= {"auc", "sensitivity", "specificity", "dice", "cases"}
    assert (plots / "roc.png").stat().st_size > 5000 and (plots / "confusion.png").stat().st_size > 5000

    (model / "classifier.safetensors").write_bytes(b"tampered")
    refused = coordinator("model", "evaluate", str(model), str(test))
    assert refused.returncode == 2 and "does not match the sha256" in refused.stderr


def test_training_under_torchrun_with_two_processes_matches_one_process(
    phantom_sets: tuple[Path, Path], tmp_path: Path
) -> None:
    """`--nproc 2`: two gloo processes under torchrun, the same draw of cases shared between them."""
    train, test = phantom_sets
    scores = {}
    for nproc in (1, 2):
        model = tmp_path / f"model-{nproc}"
        trained = coordinator(
            "model", "train", str(train), "--out", str(model), "--epochs", "3", "--seed", "5",
            "--nproc", str(nproc), "--device", "cpu",
        )  # fmt: skip
        assert trained.returncode == 0, trained.stderr + trained.stdout
        metadata = json.loads((model / "metadata.json").read_text())
        assert metadata["training"]["processes"] == nproc and metadata["task"] == "segment"
        assert metadata["training"]["epochs_run"] == 3
        report = tmp_path / f"report-{nproc}.json"
        scored = coordinator("model", "evaluate", str(model), str(test), "--json", str(report))
        assert scored.returncode == 0, scored.stderr
        scores[nproc] = json.loads(report.read_text())["macro_auc"]
    assert "2 processes" in trained.stdout
    one, two = scores[1], scores[2]
    # Each within the other's bootstrap 95% interval on the same held-out cases.
    assert one["ci95_low"] <= two["value"] <= one["ci95_high"], scores
    assert two["ci95_low"] <= one["value"] <= two["ci95_high"], scores
