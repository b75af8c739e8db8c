"""The hospital's cap, enforced before any training starts: check and reserve in one locked step."""

from __future__ import annotations

import math

from shared.privacy import DPRun, compose_epsilon, largest_epsilon_within
from site_agent.config import SiteSettings
from site_agent.errors import SiteRefusal
from site_agent.privacy.composition_memo import remember
from site_agent.privacy.ledger import Ledger, Run, Spend, total_spend


class BudgetExceeded(SiteRefusal):
    """A run whose planned spend would take the site past its cap; nothing was started."""

    reason = "budget"
    public_detail = "the requested epsilon would take this site past its privacy budget cap"


def current_spend(settings: SiteSettings) -> Spend:
    privacy = settings.privacy
    runs = Ledger(settings.paths.ledger).runs()
    return total_spend(
        runs,
        delta=privacy.delta,
        accountant=privacy.accountant,
        cap=privacy.epsilon_cap,
        memo=settings.paths.ledger,
    )


def reserve(settings: SiteSettings, *, run_id: str, round_id: str, plan: DPRun, max_grad_norm: float) -> Run:
    """Charge the whole planned run to the ledger, or refuse it if the composed total would pass the cap."""
    privacy = settings.privacy

    def admit(runs: dict[str, Run]) -> None:
        if plan.mechanism is None:
            return
        spend = total_spend(runs, delta=privacy.delta, accountant=privacy.accountant, cap=privacy.epsilon_cap)
        spent = [r.mechanism() for r in runs.values() if r.private]
        after = compose_epsilon([*spent, plan.mechanism], delta=privacy.delta, accountant=privacy.accountant)
        if after <= privacy.epsilon_cap:
            # The site's total once this run is reserved: every later reply reports it from the memo.
            remember(
                settings.paths.ledger,
                [*spent, plan.mechanism],
                delta=privacy.delta,
                accountant=privacy.accountant,
                epsilon=after,
            )
            return
        fits = (
            largest_epsilon_within(
                privacy.epsilon_cap,
                spent,
                delta=privacy.delta,
                sample_rate=plan.sample_rate,
                steps=plan.steps,
                accountant=privacy.accountant,
            )
            if math.isfinite(spend.epsilon)
            else 0.0
        )
        raise BudgetExceeded(
            f"refused: training at epsilon {plan.planned_epsilon:.2f} would bring this site's total to "
            f"{after:.2f}, over its cap of {privacy.epsilon_cap:g} (site.toml [privacy] "
            f"epsilon_cap). Spent so far: {spend.epsilon:.2f}; remaining: {spend.remaining:.2f}; "
            f"the largest epsilon a run of this length can still ask for is {fits:.2f}."
        )

    return Ledger(settings.paths.ledger).reserve(
        run_id=run_id, round_id=round_id, plan=plan, max_grad_norm=max_grad_norm, admit=admit
    )
