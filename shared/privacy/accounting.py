"""Pure privacy math: functions over numbers, no model, no files (Opacus' first layer).

A DP-SGD run is the subsampled Gaussian mechanism repeated: `steps` times, each patient is in the
batch with probability `sample_rate`, and Gaussian noise of `noise_multiplier` times the clipping
norm is added. Several runs of one site compose by concatenating their histories and asking the
accountant once (epsilons are never added: composition through RDP or PRV is much tighter).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from shared.errors import FedsynthError

if TYPE_CHECKING:
    from opacus.accountants import IAccountant

AccountantName = Literal["rdp", "prv"]
ACCOUNTANTS: tuple[AccountantName, ...] = ("rdp", "prv")


class PrivacyMathError(FedsynthError, ValueError):
    """Privacy parameters that no accountant can answer (a non-positive epsilon, delta out of range)."""


@dataclass(frozen=True)
class Mechanism:
    """One DP-SGD run, as the accountant sees it."""

    noise_multiplier: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        if not self.noise_multiplier > 0:
            raise PrivacyMathError(f"noise_multiplier must be > 0, not {self.noise_multiplier}")
        if not 0 < self.sample_rate <= 1:
            raise PrivacyMathError(f"sample_rate must be in (0, 1], not {self.sample_rate}")
        if self.steps < 0:
            raise PrivacyMathError(f"steps must be >= 0, not {self.steps}")


def default_delta(patients: int, ceiling: float = 1e-5) -> float:
    """delta at most 1/(10 N) and never above the site's ceiling (DESIGN.md, "Privacy")."""
    if patients < 1:
        raise PrivacyMathError("delta needs at least one patient")
    return min(ceiling, 1.0 / (10 * patients))


def make_accountant(name: str) -> IAccountant:
    """The one place an accountant is chosen: the ledger's composition and the training hook agree."""
    # Opacus is imported here, not above: it loads torch (about 4 CPU s and 300 MB), and a site
    # that only reports a budget its memo already holds (site_agent/privacy/composition_memo.py)
    # should not pay for it.
    from opacus.accountants import PRVAccountant, RDPAccountant

    if name == "rdp":
        return RDPAccountant()
    if name == "prv":
        return PRVAccountant()
    raise PrivacyMathError(f"unknown accountant {name!r}; use one of {list(ACCOUNTANTS)}")


def _check(delta: float, accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise PrivacyMathError(f"unknown accountant {accountant!r}; use one of {list(ACCOUNTANTS)}")
    if not 0 < delta < 1:
        raise PrivacyMathError(f"delta must be in (0, 1), not {delta}")


def compose_epsilon(mechanisms: Iterable[Mechanism], *, delta: float, accountant: AccountantName) -> float:
    """epsilon at `delta` of all `mechanisms` run one after the other on the same patients."""
    _check(delta, accountant)
    history = [(m.noise_multiplier, m.sample_rate, m.steps) for m in mechanisms if m.steps > 0]
    if not history:
        return 0.0
    acc = make_accountant(accountant)
    acc.history = history
    return float(acc.get_epsilon(delta=delta))


def noise_for_epsilon(
    *, epsilon: float, delta: float, sample_rate: float, steps: int, accountant: AccountantName
) -> float:
    """The smallest noise multiplier whose run of `steps` steps costs at most `epsilon` at `delta`."""
    _check(delta, accountant)
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise PrivacyMathError(f"epsilon must be a positive finite number, not {epsilon}")
    if steps < 1:
        raise PrivacyMathError("a DP run needs at least one step")
    from opacus.accountants.utils import get_noise_multiplier  # loads torch: see make_accountant

    sigma = get_noise_multiplier(
        target_epsilon=epsilon,
        target_delta=delta,
        sample_rate=sample_rate,
        steps=steps,
        accountant=accountant,
        epsilon_tolerance=0.005,
    )
    return float(sigma)


def largest_epsilon_within(
    cap: float,
    spent: Iterable[Mechanism],
    *,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: AccountantName,
) -> float:
    """The largest epsilon a new run of this shape could be asked for so that the composed total
    stays within `cap`; 0 when nothing fits.

    Bisects on the noise multiplier (one accountant call per probe; composition is monotone in it)
    for the least noise that fits, and answers that run's own epsilon rounded down: asking for it
    calibrates to at least that much noise, so it fits.
    """
    history = list(spent)
    if steps < 1 or compose_epsilon(history, delta=delta, accountant=accountant) >= cap:
        return 0.0

    def fits(sigma: float) -> bool:
        run = Mechanism(sigma, sample_rate, steps)
        return compose_epsilon([*history, run], delta=delta, accountant=accountant) <= cap

    low, high = 0.05, 1.0
    while not fits(high):
        low, high = high, high * 2
        if high > 1e4:
            return 0.0
    for _ in range(40):
        mid = math.sqrt(low * high)
        low, high = (low, mid) if fits(mid) else (mid, high)
        if high / low < 1.0005:
            break
    alone = compose_epsilon([Mechanism(high, sample_rate, steps)], delta=delta, accountant=accountant)
    return math.floor(alone * 100) / 100
