"""The diagnostic model's training recipe: the crops its segmenter trains on and the score that
picks its best epoch."""

from __future__ import annotations

import numpy as np

from coordinator.diagnosis.training import _cropping, _selection_score, crop_size


def test_crops_are_two_thirds_of_the_box_in_multiples_of_eight_never_larger_than_it() -> None:
    assert crop_size((48, 48, 64), 2 / 3) == (32, 32, 40)  # the CPU box: a quarter of its voxels
    assert crop_size((96, 96, 128), 2 / 3) == (64, 64, 88)  # the GPU box
    assert crop_size((16, 16, 16), 0.5) == (16, 16, 16)  # never below 16, never above the box
    for box in ((48, 48, 64), (32, 32, 48), (96, 96, 128)):
        assert all(c % 8 == 0 and c <= n for c, n in zip(crop_size(box, 2 / 3), box, strict=True))


def test_a_lesion_case_is_cropped_around_its_lesion_about_a_third_of_the_time() -> None:
    around_lesion, anywhere = _cropping(0, (16, 16, 16))
    image = np.zeros((1, 48, 48, 64), np.float32)
    mask = np.zeros_like(image)
    mask[0, 2:5, 2:5, 2:5] = 3  # a small lesion in one corner, which a random crop rarely reaches
    hits = sum(bool(around_lesion({"image": image, "mask": mask})[0]["mask"].any()) for _ in range(300))
    assert 70 <= hits <= 140  # a third of 300 is 100; a random crop alone would hold it about 3 times
    crop = anywhere({"image": image, "mask": np.zeros_like(mask)})
    assert tuple(crop["image"].shape) == (1, 16, 16, 16) and tuple(crop["mask"].shape) == (1, 16, 16, 16)


def test_the_best_epoch_is_the_one_that_both_ranks_cases_and_outlines_lesions() -> None:
    assert _selection_score({"validation_macro_auc": 0.8}) == 0.8  # no segmenter: the AUC
    assert _selection_score({"validation_mean_dice": 0.4}) == 0.4  # no AUC can be estimated
    assert _selection_score({}) is None
    # An epoch whose lesion volumes rank well by chance while it outlines nothing loses to one
    # that ranks a little worse and outlines the lesions.
    lucky = _selection_score({"validation_macro_auc": 0.794, "validation_mean_dice": 0.04})
    outlining = _selection_score({"validation_macro_auc": 0.77, "validation_mean_dice": 0.5})
    assert lucky is not None and outlining is not None and outlining > lucky
