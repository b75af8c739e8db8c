"""The hospital's cap, enforced before any training starts: check and reserve in one locked step."""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.errors import FedsynthError
from shared.privacy import Mechanism, compose_epsilon, largest_epsilon_within
from site_agent.config import SiteSettings
from site_agent.privacy.ledger import Ledger, Run, Spend, encode_epsilon, total_spend


class BudgetExceeded(FedsynthError):
    """A run whose planned spend would take the site past its cap; nothing was started."""


@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    round_id: str
    mechanism: Mechanism | None  # None: non-private (benchmarking only)
    max_grad_norm: float
    delta: float
    epsilon: float  # this run alone, at `delta`; inf when non-private


def ledger_of(settings: SiteSettings) -> Ledger:
    return Ledger(settings.paths.ledger)


def current_spend(settings: SiteSettings) -> Spend:
    privacy = settings.privacy
    runs = ledger_of(settings).runs()
    return total_spend(runs, delta=privacy.delta, accountant=privacy.accountant, cap=privacy.epsilon_cap)


def reserve(settings: SiteSettings, plan: PlannedRun) -> Run:
    """Charge the whole planned run to the ledger, or refuse it if the composed total would pass the cap."""
    privacy = settings.privacy
    ledger = ledger_of(settings)
    with ledger.locked():
        runs = ledger.runs()
        if plan.run_id in runs:
            raise BudgetExceeded(f"run {plan.run_id} is already in the ledger")
        spend = total_spend(runs, delta=privacy.delta, accountant=privacy.accountant, cap=privacy.epsilon_cap)
        if plan.mechanism is not None:
            spent = [r.mechanism() for r in runs.values() if r.private]
            after = compose_epsilon(
                [*spent, plan.mechanism], delta=privacy.delta, accountant=privacy.accountant
            )
            if after > privacy.epsilon_cap:
                fits = (
                    largest_epsilon_within(
                        privacy.epsilon_cap,
                        spent,
                        delta=privacy.delta,
                        sample_rate=plan.mechanism.sample_rate,
                        steps=plan.mechanism.steps,
                        accountant=privacy.accountant,
                    )
                    if math.isfinite(spend.epsilon)
                    else 0.0
                )
                raise BudgetExceeded(
                    f"refused: training at epsilon {plan.epsilon:.2f} would bring this site's total to "
                    f"{after:.2f}, over its cap of {privacy.epsilon_cap:g} (site.toml [privacy] "
                    f"epsilon_cap). Spent so far: {spend.epsilon:.2f}; remaining: {spend.remaining:.2f}; "
                    f"the largest epsilon a run of this length can still ask for is {fits:.2f}."
                )
        mechanism = plan.mechanism
        ledger.append(
            "reserve",
            run_id=plan.run_id,
            round_id=plan.round_id,
            accountant=privacy.accountant,
            noise_multiplier=mechanism.noise_multiplier if mechanism else 0.0,
            sample_rate=mechanism.sample_rate if mechanism else 1.0,
            steps=mechanism.steps if mechanism else 0,
            max_grad_norm=plan.max_grad_norm,
            delta=plan.delta,
            epsilon=encode_epsilon(plan.epsilon),
        )
        return ledger.runs()[plan.run_id]
