"""The `dpgan3d` backend: train, sample, save and load the class-conditional 3D GAN.

One step is two updates. The discriminator step reads one Poisson batch of real patients and a
fixed number of fresh fakes in a single forward and backward pass, so each example (real or fake)
has its gradient clipped once and noise is added once: one charged step. Fakes are many and fixed
in number (`batch_size`), and their classes are drawn uniformly, so neither the count nor the class
mix of the fakes depends on the private data. The generator step then sees only the discriminator's
verdict on new fakes, with the discriminator frozen: nothing real, nothing charged.
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from shared.crop_box import box_text
from site_agent.generator.backend import (
    Checkpointer,
    GeneratorError,
    Samples,
    StepCallback,
    StepReport,
    TrainingPlan,
    TrainingSet,
    load_generator_files,
    save_generator_files,
)
from site_agent.generator.dpgan3d.networks import Discriminator, Generator
from site_agent.privacy.engine import GradSampleMode, PrivateModule, frozen_parameters


class DPGan3D:
    name: ClassVar[str] = "dpgan3d"
    version: ClassVar[str] = "dpgan3d-2"  # 2: any box (x, y, z), no longer only cubes
    releases_once: ClassVar[bool] = False

    def __init__(
        self,
        *,
        box: tuple[int, int, int],
        classes: tuple[str, ...],
        latent_dim: int,
        width: int,
        learning_rate: float,
        grad_sample_mode: GradSampleMode,
        device: torch.device,
    ) -> None:
        self.box, self.classes, self.latent_dim, self.width = box, classes, latent_dim, width
        self.learning_rate, self.grad_sample_mode, self.device = learning_rate, grad_sample_mode, device
        self.generator = Generator(box=box, classes=len(classes), latent_dim=latent_dim, width=width).to(
            device
        )

    # --- training ------------------------------------------------------------------------------

    def train(
        self, data: TrainingSet, plan: TrainingPlan, *, checkpoints: Checkpointer, on_step: StepCallback
    ) -> int:
        if data.volumes.shape[1:] != (2, *self.box):
            raise GeneratorError(
                f"training boxes are {box_text(tuple(data.volumes.shape[2:]))}, "  # type: ignore[arg-type]
                f"the generator makes {box_text(self.box)}"
            )
        torch.manual_seed(plan.seed)
        volumes, labels = data.volumes.to(self.device), data.labels.to(self.device)
        n, fakes = len(data), plan.batch_size
        sample_rate = plan.mechanism.sample_rate if plan.mechanism else min(1.0, plan.batch_size / n)

        disc_net = Discriminator(box=self.box, classes=len(self.classes), width=self.width).to(self.device)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.learning_rate, betas=(0.5, 0.999))
        opt_d_plain = torch.optim.Adam(disc_net.parameters(), lr=self.learning_rate, betas=(0.5, 0.999))
        private: PrivateModule | None = None
        disc: nn.Module
        if plan.mechanism is not None:
            private = PrivateModule(
                disc_net,
                opt_d_plain,
                mechanism=plan.mechanism,
                max_grad_norm=plan.max_grad_norm,
                expected_batch_size=plan.batch_size + fakes,
                accountant=plan.accountant,  # type: ignore[arg-type]
                grad_sample_mode=self.grad_sample_mode,
            )
            disc, opt_d = private.module, private.optimizer
        else:
            disc, opt_d = disc_net, opt_d_plain
        draws = torch.Generator().manual_seed(plan.seed)

        start = 0
        restored = checkpoints.load()
        if restored is not None:
            start, state = restored
            self.generator.load_state_dict(state["generator"])
            opt_g.load_state_dict(state["generator_optimizer"])
            if private is not None:
                private.load_state_dict(state["discriminator"])
                if private.steps_charged != start:
                    raise GeneratorError(
                        f"checkpoint at step {start} holds an accountant with {private.steps_charged} steps"
                    )
            else:
                disc_net.load_state_dict(state["discriminator"]["module"])
                opt_d_plain.load_state_dict(state["discriminator"]["optimizer"])
            draws.set_state(state["draws"])

        bce = nn.functional.binary_cross_entropy_with_logits
        for step in range(start, plan.steps):
            # Discriminator: one Poisson batch of real patients plus `fakes` generated boxes.
            chosen = (torch.rand(n, generator=draws) < sample_rate).nonzero().squeeze(1).to(self.device)
            fake_labels = torch.randint(0, len(self.classes), (fakes,), generator=draws).to(self.device)
            z = torch.randn(fakes, self.latent_dim, generator=draws).to(self.device)
            with torch.no_grad():
                fake = self.generator(z, fake_labels)
            x = torch.cat([volumes[chosen], fake])
            y = torch.cat([labels[chosen], fake_labels])
            target = torch.cat([torch.ones(len(chosen)), torch.zeros(fakes)]).to(self.device)
            loss_d = bce(disc(x, y), target, reduction="sum")
            opt_d.zero_grad(set_to_none=True)
            with warnings.catch_warnings():
                # Opacus' hooks note that the input needs no gradient (it never does): harmless.
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                warnings.filterwarnings("ignore", message="In CPU autocast")  # Opacus' functorch on CPU
                (loss_d if private else loss_d / len(target)).backward()
            opt_d.step()

            # Generator: fresh fakes judged by the frozen discriminator.
            g_labels = torch.randint(0, len(self.classes), (fakes,), generator=draws).to(self.device)
            z = torch.randn(fakes, self.latent_dim, generator=draws).to(self.device)
            with _frozen(private, disc_net):
                loss_g = bce(
                    disc(self.generator(z, g_labels), g_labels), torch.ones(fakes, device=self.device)
                )
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
            if not (torch.isfinite(loss_d) and torch.isfinite(loss_g)):
                raise GeneratorError(f"training diverged at step {step + 1} (loss is not finite)")

            done = step + 1
            charged = private.steps_charged if private else 0
            on_step(
                StepReport(done, plan.steps, charged, {"d": loss_d.item() / len(target), "g": loss_g.item()})
            )
            if checkpoints.due(done) or done == plan.steps:
                discriminator_state = (
                    private.state_dict()
                    if private
                    else {"module": disc_net.state_dict(), "optimizer": opt_d_plain.state_dict()}
                )
                checkpoints.save(
                    done,
                    {
                        "generator": self.generator.state_dict(),
                        "generator_optimizer": opt_g.state_dict(),
                        "discriminator": discriminator_state,
                        "draws": draws.get_state(),
                    },
                )
        return private.steps_charged if private else 0

    # --- sampling ------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, labels: NDArray[np.int64], *, seed: int, batch_size: int = 8) -> Samples:
        self.generator.eval()
        noise = torch.Generator().manual_seed(seed)
        images, masks = [], []
        for start in range(0, len(labels), batch_size):
            y = torch.as_tensor(labels[start : start + batch_size], dtype=torch.int64)
            z = torch.randn(len(y), self.latent_dim, generator=noise)
            out = self.generator(z.to(self.device), y.to(self.device)).float().cpu().numpy()
            images.append(out[:, 0])
            masks.append((out[:, 1] > 0).astype(np.uint8))
        self.generator.train()
        return Samples(
            images=np.concatenate(images).astype(np.float32),
            masks=np.concatenate(masks),
            labels=np.asarray(labels, dtype=np.int64),
        )

    # --- files ---------------------------------------------------------------------------------

    def foundation(self) -> tuple[str, str] | None:
        return None  # trained from scratch

    def card(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "version": self.version,
            "box": list(self.box),
            "classes": list(self.classes),
            "latent_dim": self.latent_dim,
            "width": self.width,
        }

    def save(self, folder: Path) -> str:
        return save_generator_files(folder, self.generator.state_dict(), self.card())

    @classmethod
    def load(
        cls, folder: Path, *, device: torch.device, grad_sample_mode: GradSampleMode = "hooks"
    ) -> DPGan3D:
        try:
            card, state = load_generator_files(folder, device)
            backend = cls(
                box=tuple(card["box"]),
                classes=tuple(card["classes"]),
                latent_dim=card["latent_dim"],
                width=card["width"],
                learning_rate=0.0,
                grad_sample_mode=grad_sample_mode,
                device=device,
            )
            backend.generator.load_state_dict(state)
        except (OSError, KeyError, ValueError) as exc:
            raise GeneratorError(f"cannot load the generator in {folder}: {exc}") from None
        return backend


def _frozen(private: PrivateModule | None, disc: nn.Module) -> AbstractContextManager[None]:
    return private.frozen() if private is not None else frozen_parameters(disc)
