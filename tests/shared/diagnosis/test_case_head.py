"""The segmenter's case head: the features of a predicted lesion, the linear head fitted on them, and
a model folder that keeps the head beside the segmenter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from shared.classes import DEFAULT_CLASSES
from shared.diagnosis.bundle import (
    DiagnosticModel,
    case_probabilities,
    lesion_classes,
    load_model,
    save_model,
)
from shared.diagnosis.head import CaseHead, fit_head
from shared.diagnosis.lesion_features import IntensityError, feature_names, lesion_features, window_of
from shared.diagnosis.model_files import ModelError
from shared.diagnosis.networks import build_segmenter

WINDOW = (-160.0, 240.0)
INTENSITY = "CT window [-160, 240] HU scaled to [-1, 1]"
LESIONS = lesion_classes(DEFAULT_CLASSES)


def scaled(hu: float) -> float:
    return (hu - WINDOW[0]) / (WINDOW[1] - WINDOW[0]) * 2.0 - 1.0


def test_window_is_read_from_the_cards_intensity_text_or_refused_by_name() -> None:
    assert window_of(INTENSITY) == WINDOW
    with pytest.raises(IntensityError, match="names no 'window"):
        window_of("Hounsfield units, raw")


def test_features_tell_a_fatty_mass_from_a_cyst_and_an_empty_case() -> None:
    images = np.full((3, 16, 16, 16), scaled(40.0), np.float32)  # soft tissue everywhere
    softmax = torch.zeros(3, 1 + len(LESIONS), 16, 16, 16)
    softmax[:, 0] = 1.0
    softmax[0, 0, 0, 0, 0] = 0.7  # case 0: a faint hint, no lesion voxel
    softmax[0, 1, 0, 0, 0] = 0.3
    for case, hu in ((1, -100.0), (2, 10.0)):  # a fat ball (teratoma-like) and a water ball (cyst)
        images[case, 4:10, 4:10, 4:10] = scaled(hu)
        softmax[case, :, 4:10, 4:10, 4:10] = 0.0
        softmax[case, 1 + LESIONS.index("germ_cell_tumour"), 4:10, 4:10, 4:10] = 1.0
    f = lesion_features(images, softmax, window_hu=WINDOW, voxel_ml=0.064)
    names = feature_names(LESIONS)
    col = {n: names.index(n) for n in names}
    assert f.shape == (3, len(names))
    assert f[0, col["lesion_present"]] == 0 and f[0, col["peak_probability"]] == pytest.approx(0.3)
    assert np.count_nonzero(f[0]) == 1  # nothing but its peak
    assert f[1, col["fat_fraction"]] == 1 and f[1, col["fluid_fraction"]] == 0
    assert f[2, col["fluid_fraction"]] == 1 and f[2, col["fat_fraction"]] == 0
    assert f[1, col["mean_hu"]] == pytest.approx(-1.0, abs=0.01)  # HU / 100
    assert f[1, col["log_volume_ml"]] == pytest.approx(np.log1p(216 * 0.064), rel=1e-5)
    assert f[1, col["share_germ_cell_tumour"]] == 1 and f[1, col["log_pieces"]] == 0
    assert f[1, col["centroid_x"]] == pytest.approx(6.5 / 16)


def test_the_head_learns_a_sign_that_separates_classes() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    features = rng.normal(size=(60, 4)).astype(np.float32)
    features[:, 2] += 6.0 * labels  # only feature 2 carries the class (6 sd between classes)
    head = fit_head(features, labels, 3)
    predicted = head(torch.as_tensor(features)).argmax(1).numpy()
    assert (predicted == labels).mean() >= 0.95
    weights = head.linear.weight.detach().abs().sum(0)
    assert int(weights.argmax()) == 2


def test_a_model_folder_keeps_its_head_and_scores_the_same_after_loading(tmp_path: Path) -> None:
    torch.manual_seed(0)
    box = (16, 16, 16)
    metadata = {
        "classes": list(DEFAULT_CLASSES),
        "task": "segment",
        "input": {"box": list(box), "spacing_mm": [4.0, 4.0, 4.0], "intensity": INTENSITY},
    }
    head = CaseHead(len(feature_names(LESIONS)), len(DEFAULT_CLASSES))
    torch.nn.init.normal_(head.linear.weight)
    model = DiagnosticModel(None, build_segmenter(lesion_classes=len(LESIONS)), metadata, head.eval())
    images = np.random.default_rng(1).uniform(-1, 1, (3, *box)).astype(np.float32)
    before = model.probabilities(images, device=torch.device("cpu"))
    save_model(tmp_path / "m", model)
    loaded = load_model(tmp_path / "m", device=torch.device("cpu"))
    assert loaded.head is not None and set(loaded.metadata["weights_sha256"]) == {"segmenter", "head"}
    assert np.allclose(loaded.probabilities(images, device=torch.device("cpu")), before, atol=1e-6)
    assert np.allclose(before.sum(1), 1.0)

    (tmp_path / "m" / "head.safetensors").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="does not match the sha256"):
        load_model(tmp_path / "m", device=torch.device("cpu"))


def test_one_segmenter_pass_gives_the_same_scores_and_masks_as_the_two_it_replaces() -> None:
    torch.manual_seed(0)
    box = (16, 16, 16)
    cpu = torch.device("cpu")
    metadata = {
        "classes": list(DEFAULT_CLASSES),
        "task": "segment",
        "input": {"box": list(box), "spacing_mm": [4.0, 4.0, 4.0], "intensity": INTENSITY},
    }
    segmenter = build_segmenter(lesion_classes=len(LESIONS)).eval()
    images = np.random.default_rng(2).uniform(-1, 1, (5, *box)).astype(np.float32)
    with torch.no_grad():
        softmax = torch.softmax(segmenter(torch.from_numpy(images).unsqueeze(1)), dim=1)
    head = CaseHead(len(feature_names(LESIONS)), len(DEFAULT_CLASSES))
    torch.nn.init.normal_(head.linear.weight)
    for with_head in (False, True):
        model = DiagnosticModel(None, segmenter, metadata, head.eval() if with_head else None)
        probabilities, masks = model.probabilities_and_lesions(images, device=cpu, batch=2)
        assert masks is not None and np.array_equal(masks, model.lesion_masks(images, device=cpu))
        if with_head:
            features = lesion_features(images, softmax, window_hu=WINDOW, voxel_ml=0.064)
            with torch.no_grad():
                expected = torch.softmax(head(torch.as_tensor(features)).double(), dim=1).numpy()
        else:
            expected = case_probabilities(softmax, DEFAULT_CLASSES, 0.064).numpy()
        assert np.allclose(probabilities, expected, atol=1e-6)
        assert np.allclose(probabilities.sum(1), 1.0)
