"""The one-run audit's arithmetic and canaries (Steinke, Nasr and Jagielski 2023)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.canary_audit import (
    MARK_VOXELS,
    audit_guesses,
    canary_scores,
    epsilon_lower_bound,
    make_canaries,
    p_value,
)


def test_chance_level_guesses_rule_out_nothing() -> None:
    assert epsilon_lower_bound(r=24, v=12, delta=0.0, m=48) == 0.0
    assert epsilon_lower_bound(r=24, v=15, delta=0.0, m=48) == 0.0  # not significant at 95%


def test_all_guesses_right_give_the_closed_form_bound_without_delta() -> None:
    # With v = r, the p-value is q^r, so the bound is the epsilon where q = 0.05^(1/r).
    r = 24
    q = 0.05 ** (1 / r)
    assert epsilon_lower_bound(r=r, v=r, delta=0.0, m=48) == pytest.approx(math.log(q / (1 - q)), abs=1e-6)


def test_the_bound_grows_with_right_guesses_and_shrinks_with_delta() -> None:
    bounds = [epsilon_lower_bound(r=40, v=v, delta=0.0, m=80) for v in (28, 32, 36, 40)]
    assert bounds == sorted(bounds) and bounds[0] > 0
    assert epsilon_lower_bound(r=40, v=36, delta=1e-3, m=80) < epsilon_lower_bound(
        r=40, v=36, delta=0.0, m=80
    )


def test_p_value_falls_as_epsilon_is_assumed_smaller() -> None:
    values = [p_value(20, 18, e, 0.0, 40) for e in (4.0, 2.0, 1.0, 0.0)]
    assert values == sorted(values, reverse=True)
    with pytest.raises(ValueError, match="v <= r"):
        p_value(10, 11, 1.0, 0.0, 40)


def _patients(m: int, cube: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 0.2, size=(m, cube, cube, cube)).astype(np.float32)
    return images, np.zeros_like(images, dtype=np.uint8), np.arange(m) % 6


def test_a_generator_that_copies_its_canaries_is_caught_and_one_that_ignores_them_is_not() -> None:
    canaries = make_canaries(*_patients(48), seed=1)
    assert 10 < canaries.included.sum() < 38
    x, y, z = canaries.corners[0]
    assert (canaries.images[0, x : x + MARK_VOXELS, y : y + MARK_VOXELS, z : z + MARK_VOXELS] == 1.0).all()

    rng = np.random.default_rng(2)
    unrelated = rng.uniform(-1, 0.2, size=(120, 32, 32, 32)).astype(np.float32)
    copying = np.concatenate([canaries.images[canaries.included], unrelated])

    r, v = audit_guesses(canary_scores(canaries, copying), canaries.included, k=12)
    assert (r, v) == (24, 24)
    assert epsilon_lower_bound(r, v, 1e-5, 48) > 1.5

    r, v = audit_guesses(canary_scores(canaries, unrelated), canaries.included, k=12)
    assert epsilon_lower_bound(r, v, 1e-5, 48) < 1.0


def test_too_many_guesses_are_refused() -> None:
    with pytest.raises(ValueError, match="guesses"):
        audit_guesses(np.zeros(10), np.zeros(10, bool), k=6)
