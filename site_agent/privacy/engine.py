"""DP-SGD attached to one module and its optimizer: Opacus' third layer, the training hook.

What `PrivacyEngine.make_private` does, without its data loader: the trainer draws its own Poisson
batches (one patient = one example, each in a step with probability `sample_rate`), so the loop
can resume at any step and the steps it charges are exactly the optimiser steps that ran.

Only `step()` on the wrapped optimiser is charged, once per call. A backend must call it once per
batch of real examples and never for updates that see no real data (a GAN's generator step):
that is the double charge of Opacus' own DCGAN example (opacus issue 418).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.validators import ModuleValidator

from shared.privacy import AccountantName, Mechanism, make_accountant
from site_agent.errors import SiteAgentError

# "hooks": Opacus' hand-written per-layer rules; "functorch": torch.func.vmap over every layer.
GradSampleMode = Literal["hooks", "functorch"]


class PrivacyEngineError(SiteAgentError):
    """A module or resume state that DP-SGD cannot be run on as asked."""


class PrivateModule:
    """A module whose per-example gradients are clipped and noised by its optimiser's `step()`."""

    def __init__(
        self,
        module: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        mechanism: Mechanism,
        max_grad_norm: float,
        expected_batch_size: int,
        accountant: AccountantName,
        grad_sample_mode: GradSampleMode = "hooks",
    ) -> None:
        errors = ModuleValidator.validate(module, strict=False)
        if errors:
            raise PrivacyEngineError(f"module cannot be trained with DP-SGD: {errors[0]}")
        self.mechanism = mechanism
        # Per-example losses are summed; the optimiser averages over the fixed expected batch size,
        # which must not depend on how many real examples the Poisson draw happened to pick.
        self.module = GradSampleModule(
            module, batch_first=True, loss_reduction="sum", force_functorch=grad_sample_mode == "functorch"
        )
        self.optimizer = DPOptimizer(
            optimizer,
            noise_multiplier=mechanism.noise_multiplier,
            max_grad_norm=max_grad_norm,
            expected_batch_size=expected_batch_size,
            loss_reduction="mean",
        )
        self.accountant = make_accountant(accountant)
        self.optimizer.attach_step_hook(
            self.accountant.get_optimizer_hook_fn(sample_rate=mechanism.sample_rate)
        )

    @property
    def steps_charged(self) -> int:
        return sum(steps for _, _, steps in self.accountant.history)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Use the module without training it (a GAN's generator step): no per-example gradients,
        no parameter gradients, nothing for the optimiser to charge."""
        self.module.disable_hooks()
        try:
            with frozen_parameters(self.module):
                yield
        finally:
            self.module.enable_hooks()

    def state_dict(self) -> dict[str, Any]:
        return {
            "module": self.module._module.state_dict(),
            "optimizer": self.optimizer.original_optimizer.state_dict(),
            "accountant_history": [list(entry) for entry in self.accountant.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module._module.load_state_dict(state["module"])
        self.optimizer.original_optimizer.load_state_dict(state["optimizer"])
        self.accountant.history = [tuple(entry) for entry in state["accountant_history"]]
        for noise, rate, _ in self.accountant.history:
            if (noise, rate) != (self.mechanism.noise_multiplier, self.mechanism.sample_rate):
                raise PrivacyEngineError("checkpoint was made with another noise or sample rate")


@contextmanager
def frozen_parameters(module: torch.nn.Module) -> Iterator[None]:
    """Gradients flow through `module` to its inputs, but none are kept for its own weights."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
