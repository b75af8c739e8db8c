"""The accounting math agrees with an independent implementation: Google's dp-accounting."""

from __future__ import annotations

import dp_accounting
import pytest

from shared.privacy import (
    Mechanism,
    PrivacyMathError,
    compose_epsilon,
    default_delta,
    largest_epsilon_within,
    noise_for_epsilon,
)

# (noise multiplier, sample rate, steps): a CPU demo run, a long run, a short noisy one, a big site.
RUNS = [(2.98, 0.2, 500), (1.0, 0.01, 10_000), (1.5, 0.32, 32), (5.0, 0.05, 3000)]
# Opacus and dp-accounting evaluate RDP on different grids of orders; PRV and PLD discretise
# differently. Measured gaps are at most 0.2% (RDP) and 0.5% (PRV vs PLD).
TOLERANCE = 0.01


def _google(runs: list[tuple[float, float, int]], delta: float, kind: str) -> float:
    acc = dp_accounting.rdp.RdpAccountant() if kind == "rdp" else dp_accounting.pld.PLDAccountant()
    for sigma, q, steps in runs:
        acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    return float(acc.get_epsilon(delta))


@pytest.mark.parametrize("run", RUNS)
def test_rdp_epsilon_matches_dp_accounting(run: tuple[float, float, int]) -> None:
    ours = compose_epsilon([Mechanism(*run)], delta=1e-5, accountant="rdp")
    assert ours == pytest.approx(_google([run], 1e-5, "rdp"), rel=TOLERANCE)


@pytest.mark.parametrize("run", RUNS[:2])
def test_prv_epsilon_matches_dp_accounting_pld(run: tuple[float, float, int]) -> None:
    ours = compose_epsilon([Mechanism(*run)], delta=1e-5, accountant="prv")
    assert ours == pytest.approx(_google([run], 1e-5, "pld"), rel=TOLERANCE)


def test_releases_compose_through_the_accountant_not_by_adding_epsilons() -> None:
    a, b = Mechanism(2.0, 0.2, 200), Mechanism(1.2, 0.1, 300)
    alone = [compose_epsilon([m], delta=1e-5, accountant="rdp") for m in (a, b)]
    both = compose_epsilon([a, b], delta=1e-5, accountant="rdp")
    assert max(alone) < both < sum(alone)
    assert both == pytest.approx(_google([(2.0, 0.2, 200), (1.2, 0.1, 300)], 1e-5, "rdp"), rel=TOLERANCE)


def test_noise_is_calibrated_to_at_most_the_asked_epsilon() -> None:
    sigma = noise_for_epsilon(epsilon=4.0, delta=1e-5, sample_rate=0.2, steps=150, accountant="rdp")
    spent = compose_epsilon([Mechanism(sigma, 0.2, 150)], delta=1e-5, accountant="rdp")
    assert 3.99 <= spent <= 4.0


def test_the_largest_epsilon_that_fits_fits_and_a_little_more_does_not() -> None:
    spent = [Mechanism(3.0, 0.2, 100)]  # epsilon 3.25
    fits = largest_epsilon_within(8.0, spent, delta=1e-5, sample_rate=0.2, steps=100, accountant="rdp")
    assert 0 < fits < 8

    def total(epsilon: float) -> float:
        sigma = noise_for_epsilon(epsilon=epsilon, delta=1e-5, sample_rate=0.2, steps=100, accountant="rdp")
        return compose_epsilon([*spent, Mechanism(sigma, 0.2, 100)], delta=1e-5, accountant="rdp")

    assert total(fits) <= 8.0 < total(fits + 0.1)


def test_delta_is_at_most_one_over_ten_n_and_bad_parameters_are_named() -> None:
    assert default_delta(50) == 1e-5
    assert default_delta(1_000_000) == 1e-7
    with pytest.raises(PrivacyMathError, match="sample_rate"):
        Mechanism(1.0, 1.5, 10)
    with pytest.raises(PrivacyMathError, match="epsilon must be a positive finite"):
        noise_for_epsilon(epsilon=float("inf"), delta=1e-5, sample_rate=0.1, steps=10, accountant="rdp")
    with pytest.raises(PrivacyMathError, match="unknown accountant"):
        compose_epsilon([], delta=1e-5, accountant="gdp")  # type: ignore[arg-type]
