"""The lesionstats backend: one Gaussian mechanism over per-class lesion statistics, through the
site's own training run, and public anatomy with the class's lesion painted in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from shared.privacy import Mechanism
from site_agent.config import SiteSettings
from site_agent.generator.backend import GeneratorError, TrainingPlan
from site_agent.generator.lesionstats.backend import FoundationLesionStatistics
from site_agent.generator.lesionstats.features import (
    BOUND,
    PUBLIC_LESION,
    LesionParameters,
    Place,
    decode,
    lesion_features,
    place_index,
)
from site_agent.generator.lesionstats.painting import paint_lesion
from site_agent.generator.registry import load_backend, new_backend
from site_agent.generator.training_run import train_generator
from site_agent.generator.training_set import load_training_set
from site_agent.ingest.store import CaseStore
from site_agent.privacy.ledger import Ledger
from tests.conftest import TEST_BOX, TEST_SPACING_MM, TinyFoundation, bank_index
from tests.site_agent.conftest import TrainedSite


def _lesionstats(settings: SiteSettings, tiny: TinyFoundation) -> SiteSettings:
    update = {"backend": "lesionstats", "foundation": tiny.folder, "foundation_sha256": tiny.sha256}
    update["sampling_steps"] = 10
    return settings.model_copy(update={"generator": settings.generator.model_copy(update=update)})


def test_a_painted_lesion_reads_back_as_the_parameters_it_was_painted_from() -> None:
    asked = LesionParameters(
        patients=10.0,
        places=(Place(1.0, (0.2, 0.5, 0.1), 0.25),),
        semi_axes_mm=(20.0, 14.0, 30.0),
        intensity=0.1,
        intensity_std=0.05,
        fat_share=0.2,
        calcium_share=0.05,
    )
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(16):
        image, mask = paint_lesion(
            np.full(TEST_BOX, -0.3, np.float32), asked, spacing_mm=TEST_SPACING_MM, rng=rng
        )
        assert mask.any() and image.min() >= -1 and image.max() <= 1
        row = lesion_features(image, mask > 0, TEST_SPACING_MM)
        assert np.linalg.norm(row) <= BOUND + 1e-9
        rows.append(row)
    got = decode(np.sum(rows, axis=0))
    assert got.patients == 16
    assert len(got.places) == 1 and got.places[0].weight == 1.0  # all 16 in the one place
    assert np.allclose(got.places[0].centre, asked.places[0].centre, atol=0.06)
    assert 0.0 < got.places[0].positive_side_share < 0.75  # 16 draws of a 1-in-4 side
    assert np.allclose(got.semi_axes_mm, asked.semi_axes_mm, rtol=0.25)
    assert abs(got.fat_share - asked.fat_share) < 0.06 and abs(got.calcium_share - asked.calcium_share) < 0.04
    # Decoding leans on the public textbook mass exactly as far as the noise demands.
    drowned = decode(np.sum(rows, axis=0), noise_sd=1e6)
    assert drowned.places == PUBLIC_LESION.places
    assert np.allclose(drowned.semi_axes_mm, PUBLIC_LESION.semi_axes_mm, rtol=1e-3)
    halfway = decode(np.sum(rows, axis=0), noise_sd=8.0)
    assert PUBLIC_LESION.semi_axes_mm[2] < halfway.semi_axes_mm[2] < got.semi_axes_mm[2]
    # A box without a lesion counts once and adds nothing else.
    empty = lesion_features(np.zeros(TEST_BOX, np.float32), np.zeros(TEST_BOX, bool), TEST_SPACING_MM)
    assert empty[0] == 1 and not empty[1:].any()


def test_a_class_whose_lesions_arise_in_two_places_is_drawn_in_both_not_between_them() -> None:
    # Pericardial cysts low at the cardiophrenic angle, bronchogenic ones higher behind: their one
    # mean place would be neither.
    front_low = Place(0.5, (0.4, 0.5, -0.6), 0.9)
    back_high = Place(0.5, (0.05, -0.6, 0.6), 0.5)
    rng = np.random.default_rng(1)
    rows = []
    for place in (front_low, back_high) * 6:
        one = LesionParameters(10.0, (place,), (12.0, 12.0, 12.0), -0.1, 0.02, 0.0, 0.0)
        blank = np.full(TEST_BOX, -0.3, np.float32)
        image, mask = paint_lesion(blank, one, spacing_mm=TEST_SPACING_MM, rng=rng)
        row = lesion_features(image, mask > 0, TEST_SPACING_MM)
        assert np.linalg.norm(row) <= BOUND + 1e-9  # one place block filled, whatever the place
        rows.append(row)
    got = decode(np.sum(rows, axis=0))
    found = {place_index(p.centre[1], p.centre[2]): p for p in got.places}
    wanted = {place_index(p.centre[1], p.centre[2]): p for p in (front_low, back_high)}
    assert set(found) == set(wanted) and all(p.weight == pytest.approx(0.5) for p in found.values())
    for index, place in wanted.items():
        assert np.allclose(found[index].centre, place.centre, atol=0.08)
    # Drawn from the decoded parameters, lesions land in both places, about half in each.
    drawn = [paint_lesion(blank, got, spacing_mm=TEST_SPACING_MM, rng=rng)[1] for _ in range(40)]
    extent = np.array(TEST_BOX[1:]) - 1.0
    landed = [place_index(*(2.0 * np.argwhere(m).mean(0)[1:] / extent - 1.0)) for m in drawn]
    # (A lesion's centre strays a little from its place's, so one may cross into a neighbour.)
    assert all(10 <= landed.count(index) <= 30 for index in wanted)
    assert sum(landed.count(index) for index in wanted) >= 36
    # Noise the size of the counts hides both places: the textbook's place, not noise, is drawn.
    assert decode(np.sum(rows, axis=0), noise_sd=50.0).places == PUBLIC_LESION.places


def test_one_release_is_one_charged_step_whose_noise_is_what_the_accountant_was_told(
    trained_site: TrainedSite, tiny_foundation: TinyFoundation, tmp_path: Path
) -> None:
    settings = _lesionstats(trained_site.copy(tmp_path / "site").settings, tiny_foundation)
    run = train_generator(settings, epsilon=4.0, round_id="r-stats")
    with CaseStore(settings.paths.store) as store:
        data = load_training_set(store, settings.classes)
    # Every patient once, in one step at sample rate 1, whatever epochs and batch size say.
    assert (run.privacy.steps, run.privacy.sample_rate) == (1, 1.0)
    assert 0 < run.privacy.epsilon <= 4.0 and run.patients == len(data)
    entry = Ledger(settings.paths.ledger).runs()[run.run_id]
    assert entry.state == "complete" and entry.steps == 1
    assert run.generator.backend == "lesionstats"
    assert (run.generator.foundation_id, run.generator.foundation_sha256) == (
        "tiny-test",
        tiny_foundation.sha256,
    )

    backend = load_backend("lesionstats", settings.paths.models / run.run_id, torch.device("cpu"))
    assert isinstance(backend, FoundationLesionStatistics)
    exact = np.zeros_like(backend.sums.numpy())
    for volume, label in zip(data.volumes.numpy(), data.labels.numpy(), strict=True):
        exact[label] += lesion_features(volume[0], volume[1] > 0, TEST_SPACING_MM)
    # The noise on the sums is Gaussian with sd sigma * BOUND: a 99.9% chi-square band on every number.
    z = (backend.sums.numpy() - exact) / (run.privacy.noise_multiplier * BOUND)
    assert chi2.ppf(0.0005, z.size) < float((z**2).sum()) < chi2.ppf(0.9995, z.size)

    drawn = backend.sample(np.arange(len(settings.classes), dtype=np.int64), seed=2)
    assert drawn.images.shape == (len(settings.classes), *TEST_BOX)
    assert not drawn.masks[0].any()  # normal: anatomy only
    assert all(drawn.masks[k].any() for k in range(1, len(settings.classes)))
    # The run folder carries the foundation's anatomy bank: a normal box is a bank box, moved a little.
    assert backend.anatomy is not None and len(backend.anatomy) == 6
    assert backend.card()["anatomy"] == "the foundation's public anatomy bank (6 boxes)"
    assert backend.noise_sd == pytest.approx(run.privacy.noise_multiplier * BOUND)  # kept for decoding
    assert bank_index(drawn.images[0], backend.anatomy) >= 0
    # Without a bank the anatomy is the foundation's own draw.
    backend.anatomy = None
    drawn = backend.sample(np.array([0, 1]), seed=2)
    assert drawn.images.shape == (2, *TEST_BOX) and not drawn.masks[0].any() and drawn.masks[1].any()


def test_without_dp_the_drawn_lesions_sit_where_the_class_lesions_of_the_site_sit(
    trained_site: TrainedSite, tiny_foundation: TinyFoundation, tmp_path: Path
) -> None:
    settings = _lesionstats(trained_site.copy(tmp_path / "site").settings, tiny_foundation)
    backend = new_backend(settings, torch.device("cpu"))
    with CaseStore(settings.paths.store) as store:
        data = load_training_set(store, settings.classes)
    plan = TrainingPlan(None, 1.0, len(data), 1, "rdp", 0)
    assert backend.train(data, plan, checkpoints=_NoCheckpoints(), on_step=lambda _r: None) == 0
    # Enough draws that each class's places are drawn in about their share of its lesions.
    labels = np.repeat(np.arange(1, len(settings.classes)), 40)
    drawn = backend.sample(labels, seed=3)
    midline = (TEST_BOX[0] - 1) / 2.0

    def place(mask: np.ndarray) -> np.ndarray:  # distance from the midline, then y and z
        centre = np.argwhere(mask).mean(0)
        return np.array([abs(centre[0] - midline), centre[1], centre[2]])

    for k in range(1, len(settings.classes)):
        real = [v for v, y in zip(data.volumes.numpy(), data.labels.numpy(), strict=True) if y == k]
        real_place = np.mean([place(v[1] > 0) for v in real], axis=0)
        drawn_place = np.mean([place(m) for m, y in zip(drawn.masks, labels, strict=True) if y == k], 0)
        assert np.linalg.norm((drawn_place - real_place) * TEST_SPACING_MM) < 20.0, settings.classes[k]


def test_a_plan_of_many_steps_is_refused(trained_site: TrainedSite, tiny_foundation: TinyFoundation) -> None:
    backend = new_backend(_lesionstats(trained_site.settings, tiny_foundation), torch.device("cpu"))
    with CaseStore(trained_site.settings.paths.store) as store:
        data = load_training_set(store, trained_site.settings.classes)
    plan = TrainingPlan(Mechanism(1.0, 0.5, 4), 1.0, len(data) // 2, 4, "rdp", 0)
    with pytest.raises(GeneratorError, match="once over every patient"):
        backend.train(data, plan, checkpoints=_NoCheckpoints(), on_step=lambda _r: None)


class _NoCheckpoints:
    def due(self, step: int) -> bool:
        return False

    def save(self, step: int, state: dict[str, object]) -> None:
        pass

    def load(self) -> None:
        return None
