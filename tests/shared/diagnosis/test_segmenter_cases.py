"""Case-level classes from a class segmenter: what it segments decides the case."""

from __future__ import annotations

import numpy as np
import torch

from shared.classes import DEFAULT_CLASSES
from shared.diagnosis.bundle import case_probabilities, lesion_classes, voxel_labels


def test_voxel_labels_give_each_lesion_voxel_its_case_class_and_normal_none() -> None:
    masks = np.zeros((3, 4, 4, 4), np.uint8)
    masks[:, 1:3, 1:3, 1:3] = 1  # a lesion in every case, even the normal one (its thymic remnant)
    labels = np.array([DEFAULT_CLASSES.index(c) for c in ("thymoma", "normal", "benign_cyst")])
    targets = voxel_labels(masks, labels, DEFAULT_CLASSES)
    lesions = lesion_classes(DEFAULT_CLASSES)
    assert "normal" not in lesions and len(lesions) == 5
    assert set(np.unique(targets[0])) == {0, lesions.index("thymoma") + 1}
    assert set(np.unique(targets[1])) == {0}
    assert set(np.unique(targets[2])) == {0, lesions.index("benign_cyst") + 1}


def test_no_predicted_lesion_is_normal_and_a_confident_lesion_is_its_class() -> None:
    lesions = lesion_classes(DEFAULT_CLASSES)
    softmax = torch.zeros(3, 1 + len(lesions), 8, 8, 8)
    softmax[:, 0] = 0.98  # background everywhere, faint lesion channels
    softmax[:, 1:] = 0.02 / len(lesions)
    cyst = lesions.index("benign_cyst") + 1
    softmax[1, :, 2:6, 2:6, 2:6] = 0.0  # case 1: a 64-voxel cyst
    softmax[1, cyst, 2:6, 2:6, 2:6] = 0.9
    softmax[1, 0, 2:6, 2:6, 2:6] = 0.1
    softmax[2, 0, 3, 3, 3], softmax[2, cyst, 3, 3, 3] = 0.6, 0.4  # case 2: a hint, no lesion voxel
    p = case_probabilities(softmax, DEFAULT_CLASSES, voxel_ml=0.064)  # 4 mm voxels
    assert np.allclose(p.sum(1).numpy(), 1.0)
    assert DEFAULT_CLASSES[int(p[0].argmax())] == "normal"
    assert DEFAULT_CLASSES[int(p[1].argmax())] == "benign_cyst"
    assert DEFAULT_CLASSES[int(p[2].argmax())] == "normal"
    # The hint still ranks case 2 above case 0 for the cyst: an AUC can use it.
    k = DEFAULT_CLASSES.index("benign_cyst")
    assert p[1, k] > p[2, k] > p[0, k]
