"""The `lesionstats` backend: a public foundation draws the anatomy, and this site's patients tell it,
through one Gaussian mechanism, where each class's lesion sits, how large it is and what it is made of.

The alternative the DP fine-tune is measured against (bench.utility): instead of spending the
budget on thousands of weights, spend it on about a dozen numbers per class.

- Every training patient gives one bounded vector, [1, lesion features] (features.py), in the row
  of its class; the release is the per-class sum of those vectors plus Gaussian noise. That is one
  DP-SGD step over every patient at once (sample rate 1) of a linear loss on a class table, run
  through the site's `PrivateModule`: the ledger, the cap and the accountant see it exactly as they
  see a generator's training, and the noise the accountant calibrated is the noise that was added.
  The vectors are scaled so that no patient's gradient exceeds `max_grad_norm`: nothing is clipped,
  and the sensitivity is known before any data is read.
- Decoding the noisy sums into each class's centre, semi-axes and make-up is post-processing:
  a posterior mean that leans on a public textbook mass as far as the known noise demands.
- Sampling takes each box's anatomy from the foundation's public anatomy bank when it has one
  (shared.foundation.anatomy: public CT boxes, shifted a little), otherwise draws it from the
  foundation under its `public` row (what public CT taught, no class), and paints the class's lesion
  into it (painting.py); the mask is the painted lesion's, and a `normal` box gets none. Public
  nodules stay unmasked anatomy.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from shared.classes import NORMAL
from shared.crop_box import box_text
from shared.foundation.anatomy import draw_anatomy
from shared.foundation.artefact import Foundation
from shared.foundation.files import ANATOMY
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
from site_agent.generator.lesionstats.features import (
    BOUND,
    FEATURES,
    LesionParameters,
    decode,
    lesion_features,
)
from site_agent.generator.lesionstats.painting import paint_lesion
from site_agent.privacy.engine import PrivateModule

SUMS = "lesion_sums"
NOISE_SD = "lesion_noise_sd"  # the Gaussian noise's sd on every sum, which decoding weighs


class _ClassTable(nn.Module):
    """One row per class; the loss -<row of the patient's class, its vector> makes each patient's
    gradient exactly minus its own vector, so one SGD step of rate 1 from zero leaves the (noisy)
    per-class sums divided by the batch size."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.rows = nn.Embedding(classes, 1 + FEATURES)
        nn.init.zeros_(self.rows.weight)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.rows(labels)


class FoundationLesionStatistics:
    name: ClassVar[str] = "lesionstats"
    # 2: lesions placed by a histogram over nine coarse places, each with its own mean place (1 had
    # one mean place per class); the sums of 1 cannot be read as 2's.
    version: ClassVar[str] = "lesionstats-2"
    releases_once: ClassVar[bool] = True

    def __init__(
        self,
        *,
        foundation: Foundation,
        foundation_sha256: str,
        classes: tuple[str, ...],
        box: tuple[int, int, int],
        sampling_steps: int = SAMPLING_STEPS,
        device: torch.device,
    ) -> None:
        check_fits(foundation, box)
        spec = foundation.spec
        self.spec, self.classes, self.box = spec, tuple(classes), box
        self.foundation_id, self.foundation_sha256 = foundation.card.foundation_id, foundation_sha256
        self.scale_factor, self.sampling_steps, self.device = foundation.scale_factor, sampling_steps, device
        self.autoencoder = foundation.autoencoder.to(device).eval()
        self.denoiser = foundation.denoiser.to(device).eval()
        self.anatomy = foundation.anatomy
        self.sums = torch.zeros(len(self.classes), 1 + FEATURES, dtype=torch.float64)
        self.noise_sd = 0.0

    # --- the release ---------------------------------------------------------------------------

    def _vectors(self, data: TrainingSet) -> torch.Tensor:
        volumes = data.volumes.numpy()
        rows = [lesion_features(v[0], v[1] > 0, self.spec.spacing_mm) for v in volumes]
        return torch.tensor(np.stack(rows), dtype=torch.float32)

    def train(
        self, data: TrainingSet, plan: TrainingPlan, *, checkpoints: Checkpointer, on_step: StepCallback
    ) -> int:
        if data.volumes.shape[1:] != (2, *self.box):
            raise GeneratorError(
                f"training boxes are {box_text(tuple(data.volumes.shape[2:]))}, "  # type: ignore[arg-type]
                f"the generator makes {box_text(self.box)}"
            )
        vectors, labels = self._vectors(data), data.labels
        if plan.mechanism is None:  # benchmarks only: the exact sums
            sums = torch.zeros(len(self.classes), 1 + FEATURES, dtype=torch.float64)
            sums.index_add_(0, labels, vectors.double())
            self.sums = sums
            on_step(StepReport(1, 1, 0, {"patients": float(len(data))}))
            return 0
        if plan.steps != 1 or plan.mechanism.sample_rate != 1.0 or plan.batch_size != len(data):
            raise GeneratorError(
                "lesionstats releases its statistics once over every patient (one step at sample rate "
                f"1), but the plan has {plan.steps} steps at sample rate {plan.mechanism.sample_rate:g}"
            )
        restored = checkpoints.load()
        table = _ClassTable(len(self.classes))
        private = PrivateModule(
            table,
            torch.optim.SGD(table.parameters(), lr=1.0),
            mechanism=plan.mechanism,
            max_grad_norm=plan.max_grad_norm,
            expected_batch_size=plan.batch_size,
            accountant=plan.accountant,  # type: ignore[arg-type]
            grad_sample_mode="hooks",
        )
        if restored is not None:  # the release already happened: never draw its noise again
            private.load_state_dict(restored[1]["table"])
        else:
            torch.manual_seed(plan.seed)  # Opacus draws its noise from torch's generator; the seed is secret
            scale = plan.max_grad_norm / BOUND  # every patient's gradient has norm <= max_grad_norm
            private.optimizer.zero_grad(set_to_none=True)
            loss = -(private.module(labels) * (vectors * scale)).sum()
            with warnings.catch_warnings():  # the table's input is a label, never a gradient
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            private.optimizer.step()
            checkpoints.save(1, {"table": private.state_dict()})
        weight = table.rows.weight.detach().double()
        self.sums = weight * plan.batch_size * BOUND / plan.max_grad_norm
        # Opacus added N(0, (sigma * max_grad_norm)^2) to the summed gradient: sigma * BOUND per sum.
        self.noise_sd = plan.mechanism.noise_multiplier * BOUND
        on_step(StepReport(1, 1, private.steps_charged, {"patients": float(len(data))}))
        return private.steps_charged

    def parameters_by_class(self) -> dict[str, LesionParameters]:
        return {name: decode(self.sums[k].numpy(), self.noise_sd) for k, name in enumerate(self.classes)}

    # --- sampling ------------------------------------------------------------------------------

    def sample(self, labels: NDArray[np.int64], *, seed: int, batch_size: int = 8) -> Samples:
        labels = np.asarray(labels, dtype=np.int64)
        # The release itself seeds the draws beside `seed`: two hospitals sampling with the same
        # seed from the same bank must not pick the same boxes in the same order.
        release = int.from_bytes(hashlib.sha256(self.sums.numpy().tobytes()).digest()[:8], "big")
        rng = np.random.default_rng([seed, release])
        if self.anatomy is not None:
            images = draw_anatomy(self.anatomy, len(labels), rng)
        else:
            images = draw(
                self.spec,
                self.autoencoder,
                self.denoiser,
                self.scale_factor,
                np.full(len(labels), self.spec.public_class, dtype=np.int64),
                seed=seed,
                steps=self.sampling_steps,
                batch_size=batch_size,
            ).images.copy()
        params = self.parameters_by_class()
        masks = np.zeros(images.shape, dtype=np.uint8)
        for k, label in enumerate(labels):
            name = self.classes[int(label)]
            if name == NORMAL:
                continue
            images[k], masks[k] = paint_lesion(
                images[k], params[name], spacing_mm=self.spec.spacing_mm, rng=rng
            )
        return Samples(images, masks, labels)

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
            "sampling_steps": self.sampling_steps,
            "anatomy": "foundation draws"
            if self.anatomy is None
            else f"the foundation's public anatomy bank ({len(self.anatomy)} boxes)",
            "noise_sd_per_sum": round(self.noise_sd, 4),  # what decoding weighed the sums against
            # The released statistics, decoded: DP output, readable by whoever may read the card.
            "lesions": {
                name: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in _as_dict(p).items()}
                for name, p in self.parameters_by_class().items()
                if name != NORMAL
            },
        }

    def save(self, folder: Path) -> str:
        """The whole generator in one file (the foundation's two networks and the released sums), so
        a run folder samples without the foundation at hand."""
        state = network_weights(self.autoencoder, self.denoiser)
        state[SUMS] = self.sums.clone()
        state[NOISE_SD] = torch.tensor(self.noise_sd, dtype=torch.float64)
        if self.anatomy is not None:
            state[ANATOMY] = torch.from_numpy(np.ascontiguousarray(self.anatomy))
        return save_generator_files(folder, state, self.card())

    @classmethod
    def load(cls, folder: Path, *, device: torch.device) -> FoundationLesionStatistics:
        try:
            card, state = load_generator_files(folder, device)
            if card.get("version") != cls.version:
                raise GeneratorError(
                    f"the generator in {folder} is {card.get('version')}, which this site agent cannot "
                    f"sample ({cls.version}); train a new one (`site-agent train`, which spends budget)"
                )
            spec, autoencoder, denoiser = load_networks(card, state, device)
            sums = state[SUMS].double().cpu()
            noise_sd = float(state[NOISE_SD]) if NOISE_SD in state else 0.0
            anatomy = state[ANATOMY].cpu().numpy() if ANATOMY in state else None
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise GeneratorError(f"cannot load the generator in {folder}: {exc}") from None
        backend = cls.__new__(cls)
        backend.spec, backend.classes, backend.box = spec, tuple(card["classes"]), spec.box
        backend.foundation_id, backend.foundation_sha256 = card["foundation_id"], card["foundation_sha256"]
        backend.scale_factor, backend.sampling_steps = (
            float(card["scale_factor"]),
            int(card["sampling_steps"]),
        )
        backend.device, backend.autoencoder, backend.denoiser = device, autoencoder, denoiser
        backend.sums, backend.noise_sd, backend.anatomy = sums, noise_sd, anatomy
        return backend


def _as_dict(p: LesionParameters) -> dict[str, Any]:
    return {
        "patients": p.patients,
        "places": [
            {
                "weight": round(place.weight, 4),
                "centre": [round(c, 4) for c in place.centre],
                "positive_side_share": round(place.positive_side_share, 4),
            }
            for place in p.places
        ],
        "semi_axes_mm": [round(a, 2) for a in p.semi_axes_mm],
        "intensity": p.intensity,
        "intensity_std": p.intensity_std,
        "fat_share": p.fat_share,
        "calcium_share": p.calcium_share,
    }
