"""The `ldm3d` backend: a public foundation's latent diffusion model, fine-tuned on this site's
patients with DP-SGD, drawing image and lesion mask together for each class.

What is trained, and how the noise is spent:

- The autoencoder stays frozen: every patient's box is encoded once to its latent (the mean of
  the posterior), which never leaves the process.
- Only a small part of the denoiser learns (`trainable`): the class embeddings ("classes"), or
  those plus every residual block's projection of the time-and-class embedding ("conditioning",
  the default: about 80 thousand weights of 2.9 million), or everything ("all"). Each class row
  starts from the public row, so the fine-tune begins from what public CT taught.
- One step reads one Poisson batch of patients. Each patient's loss is the mean over
  `draws_per_patient` noise levels and noise draws, accumulated into that patient's own
  per-example gradient before it is clipped once: the patient stays the privacy unit, and the
  step's signal is less noisy for the same privacy cost.
- An exponential moving average of the trained weights is what samples are drawn from
  (post-processing of a DP output costs nothing).

Nothing else reads the real data: the one optimiser step per batch goes through the site's
`PrivateModule`, whose accountant the ledger trusts.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from shared.crop_box import box_text
from shared.foundation.artefact import Foundation, load_foundation
from shared.foundation.files import FoundationError, foundation_sha256
from shared.foundation.networks import build_denoiser, training_scheduler
from shared.foundation.sampling import SAMPLING_STEPS, draw
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
from site_agent.generator.foundation_files import check_fits, load_networks, network_card, network_weights
from site_agent.privacy.engine import GradSampleMode, PrivateModule

Trainable = Literal["classes", "conditioning", "all"]
TRAINABLE: tuple[Trainable, ...] = ("classes", "conditioning", "all")
EMA_DECAY = 0.99


def _is_trained(name: str, trainable: Trainable) -> bool:
    if trainable == "all":
        return True
    if name.startswith("class_embedding."):
        return True
    return trainable == "conditioning" and ".time_emb_proj." in name


class LatentDiffusion3D:
    name: ClassVar[str] = "ldm3d"
    version: ClassVar[str] = "ldm3d-1"
    releases_once: ClassVar[bool] = False

    def __init__(
        self,
        *,
        foundation: Foundation,
        foundation_sha256: str,
        classes: tuple[str, ...],
        box: tuple[int, int, int],
        trainable: Trainable = "conditioning",
        draws_per_patient: int = 4,
        learning_rate: float = 2e-3,
        grad_sample_mode: GradSampleMode = "hooks",
        sampling_steps: int = SAMPLING_STEPS,
        device: torch.device,
    ) -> None:
        spec = foundation.spec
        if tuple(classes) != tuple(spec.classes):
            raise GeneratorError(
                f"the foundation {foundation.card.foundation_id} knows the classes {list(spec.classes)}, "
                f"this site has {list(classes)}"
            )
        check_fits(foundation, box)
        if trainable not in TRAINABLE:
            raise GeneratorError(f"trainable must be one of {', '.join(TRAINABLE)}, not {trainable!r}")
        self.spec, self.classes, self.box = spec, tuple(classes), box
        self.foundation_id, self.foundation_sha256 = foundation.card.foundation_id, foundation_sha256
        self.scale_factor = foundation.scale_factor
        self.trainable, self.draws_per_patient = trainable, draws_per_patient
        self.learning_rate, self.grad_sample_mode, self.device = learning_rate, grad_sample_mode, device
        self.sampling_steps = sampling_steps
        self.autoencoder = foundation.autoencoder.to(device).eval()
        self.denoiser = foundation.denoiser.to(device)
        for p in self.autoencoder.parameters():
            p.requires_grad_(False)
        self._sampler = build_denoiser(spec).to(device)  # holds the EMA weights
        self._sampler.load_state_dict(self.denoiser.state_dict())
        self._sampler.eval()

    # --- training ------------------------------------------------------------------------------

    def _trained_parameters(self) -> list[nn.Parameter]:
        chosen = []
        for name, p in self.denoiser.named_parameters():
            p.requires_grad_(_is_trained(name, self.trainable))
            if p.requires_grad:
                chosen.append(p)
        return chosen

    @torch.no_grad()
    def _latents(self, volumes: torch.Tensor) -> torch.Tensor:
        out = [
            self.autoencoder.encode(volumes[i : i + 8].to(self.device))[0] for i in range(0, len(volumes), 8)
        ]
        return torch.cat(out) * self.scale_factor

    def train(
        self, data: TrainingSet, plan: TrainingPlan, *, checkpoints: Checkpointer, on_step: StepCallback
    ) -> int:
        if data.volumes.shape[1:] != (2, *self.box):
            raise GeneratorError(
                f"training boxes are {box_text(tuple(data.volumes.shape[2:]))}, "  # type: ignore[arg-type]
                f"the generator makes {box_text(self.box)}"
            )
        torch.manual_seed(plan.seed)
        latents, labels = self._latents(data.volumes), data.labels.to(self.device)
        n = len(data)
        sample_rate = plan.mechanism.sample_rate if plan.mechanism else min(1.0, plan.batch_size / n)
        with torch.no_grad():  # every class begins where public CT left the model
            table = self.denoiser.class_embedding.weight
            table[: len(self.classes)] = table[self.spec.public_class]
        params = self._trained_parameters()
        self.denoiser.train()
        plain = torch.optim.Adam(params, lr=self.learning_rate)
        private: PrivateModule | None = None
        if plan.mechanism is not None:
            private = PrivateModule(
                self.denoiser,
                plain,
                mechanism=plan.mechanism,
                max_grad_norm=plan.max_grad_norm,
                expected_batch_size=plan.batch_size,
                accountant=plan.accountant,  # type: ignore[arg-type]
                grad_sample_mode=self.grad_sample_mode,
            )
            net, optimiser = private.module, private.optimizer
        else:
            net, optimiser = self.denoiser, plain
        scheduler = training_scheduler(self.spec)
        draws = torch.Generator().manual_seed(plan.seed)

        start = 0
        restored = checkpoints.load()
        if restored is not None:
            start, state = restored
            if private is not None:
                private.load_state_dict(state["denoiser"])
                if private.steps_charged != start:
                    raise GeneratorError(
                        f"checkpoint at step {start} holds an accountant with {private.steps_charged} steps"
                    )
            else:
                self.denoiser.load_state_dict(state["denoiser"]["module"])
                plain.load_state_dict(state["denoiser"]["optimizer"])
            self._sampler.load_state_dict(state["ema"])
            draws.set_state(state["draws"])

        for step in range(start, plan.steps):
            chosen = (torch.rand(n, generator=draws) < sample_rate).nonzero().squeeze(1).to(self.device)
            optimiser.zero_grad(set_to_none=True)
            total = 0.0
            if len(chosen) == 0 and private is not None:
                # Poisson sampling drew no patient. The step still happens and is charged, as DP-SGD
                # requires: no gradients to clip, only the noise (the networks cannot run on zero
                # volumes, so Opacus is handed the empty per-sample gradients directly).
                for parameter in (q for q in net.parameters() if q.requires_grad):
                    parameter.grad_sample = torch.zeros((0, *parameter.shape), device=parameter.device)
            for _ in range(self.draws_per_patient if len(chosen) else 0):
                x = latents[chosen]
                noise = torch.randn(x.shape, generator=draws).to(self.device)
                t = torch.randint(0, self.spec.timesteps, (len(chosen),), generator=draws).to(self.device)
                noisy = scheduler.add_noise(original_samples=x, noise=noise, timesteps=t)
                predicted = net(noisy, timesteps=t, class_labels=labels[chosen])
                per_patient = (predicted - noise).pow(2).flatten(1).mean(1) / self.draws_per_patient
                loss = per_patient.sum() if private else per_patient.mean()
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Full backward hook is firing")
                    warnings.filterwarnings("ignore", message="In CPU autocast")
                    loss.backward()
                total += per_patient.detach().sum().item() / max(1, len(chosen))
            optimiser.step()
            if not np.isfinite(total):
                raise GeneratorError(f"training diverged at step {step + 1} (loss is not finite)")
            self._update_ema()

            done = step + 1
            charged = private.steps_charged if private else 0
            on_step(StepReport(done, plan.steps, charged, {"denoise": total}))
            if checkpoints.due(done) or done == plan.steps:
                denoiser_state = (
                    private.state_dict()
                    if private
                    else {"module": self.denoiser.state_dict(), "optimizer": plain.state_dict()}
                )
                checkpoints.save(
                    done,
                    {
                        "denoiser": denoiser_state,
                        "ema": self._sampler.state_dict(),
                        "draws": draws.get_state(),
                    },
                )
        return private.steps_charged if private else 0

    @torch.no_grad()
    def _update_ema(self) -> None:
        live = dict(self.denoiser.named_parameters())
        for name, p in self._sampler.named_parameters():
            if _is_trained(name, self.trainable):
                p.mul_(EMA_DECAY).add_(live[name].detach(), alpha=1.0 - EMA_DECAY)

    # --- sampling ------------------------------------------------------------------------------

    def sample(self, labels: NDArray[np.int64], *, seed: int, batch_size: int = 8) -> Samples:
        drawn = draw(
            self.spec,
            self.autoencoder,
            self._sampler,
            self.scale_factor,
            np.asarray(labels, dtype=np.int64),
            seed=seed,
            steps=self.sampling_steps,
            batch_size=batch_size,
        )
        return Samples(drawn.images, drawn.masks, np.asarray(labels, dtype=np.int64))

    # --- files ---------------------------------------------------------------------------------

    def foundation(self) -> tuple[str, str] | None:
        return self.foundation_id, self.foundation_sha256

    def card(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "version": self.version,
            "box": list(self.box),
            "classes": list(self.classes),
            **network_card(self.spec, self.scale_factor, (self.foundation_id, self.foundation_sha256)),
            "trainable": self.trainable,
            "draws_per_patient": self.draws_per_patient,
            "sampling_steps": self.sampling_steps,
        }

    def save(self, folder: Path) -> str:
        """The whole generator in one file (the frozen autoencoder and the EMA denoiser), so a run
        folder samples without the foundation at hand; its card names the foundation it began from."""
        return save_generator_files(folder, network_weights(self.autoencoder, self._sampler), self.card())

    @classmethod
    def load(cls, folder: Path, *, device: torch.device) -> LatentDiffusion3D:
        try:
            card, state = load_generator_files(folder, device)
            spec, autoencoder, denoiser = load_networks(card, state, device)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise GeneratorError(f"cannot load the generator in {folder}: {exc}") from None
        backend = cls.__new__(cls)
        backend.spec, backend.classes, backend.box = spec, tuple(card["classes"]), spec.box
        backend.foundation_id, backend.foundation_sha256 = card["foundation_id"], card["foundation_sha256"]
        backend.scale_factor, backend.trainable = float(card["scale_factor"]), card["trainable"]
        backend.draws_per_patient, backend.learning_rate = int(card["draws_per_patient"]), 0.0
        backend.grad_sample_mode, backend.device = "hooks", device
        backend.sampling_steps = int(card.get("sampling_steps", SAMPLING_STEPS))
        backend.autoencoder, backend.denoiser = autoencoder, denoiser
        backend._sampler = backend.denoiser
        return backend


def open_foundation(folder: Path, sha256: str | None, device: torch.device) -> tuple[Foundation, str]:
    """The site's foundation, checked against the hash its settings (or the round) name."""
    try:
        foundation = load_foundation(folder, sha256=sha256, device=str(device))
    except FoundationError as exc:
        raise GeneratorError(str(exc)) from None
    return foundation, foundation_sha256(folder)
