"""Where a DP run's epsilon is decided: plan the run, then ask its epsilon after any number of steps.

In the spirit of Opacus' `make_private_with_epsilon` and `get_epsilon`, over our own trainer:

    run = DPRun.plan(epsilon=8, patients=96, batch_size=8, epochs=200, delta_ceiling=1e-5,
                     accountant="rdp")
        delta        min(ceiling, 1/(10 N))            (DESIGN.md, "Privacy")
        sample rate  q = batch / N                      each patient in a step with probability q
        steps        ceil(epochs / q)
        noise        the least sigma whose run of `steps` steps costs at most the asked epsilon
    run.planned_epsilon          the whole run's cost, as the accountant answers it (not the ask)
    run.epsilon_after(steps)     the first `steps` steps' cost (progress, a run cut short)
    run.spend(max_grad_norm)     the card's privacy section
    DPRun.of_spend(card.privacy) the run a card describes, so anyone can recompute what it claims

The site plans, reserves and records its runs through this class; the coordinator recomputes every
card it receives through it. The math beneath is `accounting.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.privacy.accounting import (
    ACCOUNTANTS,
    AccountantName,
    Mechanism,
    PrivacyMathError,
    compose_epsilon,
    default_delta,
    noise_for_epsilon,
)
from shared.schemas import PrivacySpend

NON_PRIVATE = "none"  # the accountant a card names for a run without DP


@dataclass(frozen=True)
class DPRun:
    """One DP-SGD run's privacy parameters; `noise_multiplier` 0 marks a non-private benchmark run."""

    noise_multiplier: float
    sample_rate: float
    steps: int
    delta: float
    accountant: AccountantName

    @classmethod
    def plan(
        cls,
        *,
        epsilon: float,
        patients: int,
        batch_size: int,
        epochs: float,
        delta_ceiling: float,
        accountant: AccountantName,
    ) -> DPRun:
        """The run that trains `epochs` over `patients` and costs at most `epsilon` (inf: no DP)."""
        if batch_size < 1 or not epochs > 0:
            raise PrivacyMathError(f"a run needs batch_size >= 1 and epochs > 0, not {batch_size}, {epochs}")
        delta = default_delta(patients, delta_ceiling)
        sample_rate = min(1.0, batch_size / patients)
        steps = math.ceil(epochs / sample_rate)
        noise = 0.0
        if math.isfinite(epsilon):
            noise = noise_for_epsilon(
                epsilon=epsilon, delta=delta, sample_rate=sample_rate, steps=steps, accountant=accountant
            )
        return cls(noise, sample_rate, steps, delta, accountant)

    @classmethod
    def of_spend(cls, spend: PrivacySpend) -> DPRun:
        """The run a card's privacy section describes; refused when no accountant here can answer it."""
        if spend.accountant == NON_PRIVATE or spend.noise_multiplier <= 0:
            return cls(0.0, spend.sample_rate, spend.steps, spend.delta, "rdp")
        if spend.accountant not in ACCOUNTANTS:
            raise PrivacyMathError(
                f"accountant {spend.accountant!r} cannot be recomputed here; use one of {list(ACCOUNTANTS)}"
            )
        accountant: AccountantName = "rdp" if spend.accountant == "rdp" else "prv"
        return cls(spend.noise_multiplier, spend.sample_rate, spend.steps, spend.delta, accountant)

    @property
    def private(self) -> bool:
        return self.noise_multiplier > 0

    @property
    def mechanism(self) -> Mechanism | None:
        """The whole run as the accountant sees it; None for a non-private run."""
        return Mechanism(self.noise_multiplier, self.sample_rate, self.steps) if self.private else None

    @property
    def planned_epsilon(self) -> float:
        return self.epsilon_after(self.steps)

    def epsilon_after(self, steps: int) -> float:
        """epsilon at this run's delta of its first `steps` steps; inf for a non-private run."""
        if not self.private:
            return math.inf
        step_mechanism = Mechanism(self.noise_multiplier, self.sample_rate, steps)
        return compose_epsilon([step_mechanism], delta=self.delta, accountant=self.accountant)

    def spend(self, *, max_grad_norm: float, steps: int | None = None) -> PrivacySpend:
        """The card's privacy section for this run, after `steps` steps (default: all of them)."""
        ran = self.steps if steps is None else steps
        return PrivacySpend(
            epsilon=self.epsilon_after(ran),
            delta=self.delta,
            accountant=self.accountant if self.private else NON_PRIVATE,
            noise_multiplier=self.noise_multiplier,
            sample_rate=self.sample_rate,
            steps=ran,
            max_grad_norm=max_grad_norm,
        )
