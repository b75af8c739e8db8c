"""The ldm3d backend: a public foundation fine-tuned under DP through the site's own training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_post_hook

from site_agent.config import SiteSettings
from site_agent.generator.backend import GeneratorError
from site_agent.generator.ldm3d.backend import LatentDiffusion3D
from site_agent.generator.registry import load_backend, new_backend
from site_agent.generator.training_run import train_generator
from site_agent.privacy.ledger import Ledger
from tests.conftest import TinyFoundation
from tests.site_agent.conftest import TrainedSite


def _ldm3d(settings: SiteSettings, tiny: TinyFoundation, **generator: object) -> SiteSettings:
    update = {"backend": "ldm3d", "foundation": tiny.folder, "foundation_sha256": tiny.sha256}
    return settings.model_copy(
        update={"generator": settings.generator.model_copy(update={**update, **generator})}
    )


def test_a_dp_fine_tune_trains_only_the_conditioning_charges_each_batch_once_and_names_its_foundation(
    trained_site: TrainedSite, tiny_foundation: TinyFoundation, tmp_path: Path
) -> None:
    settings = _ldm3d(trained_site.copy(tmp_path / "site").settings, tiny_foundation, epochs=2.0)
    updates: list[int] = []

    def count(optimizer: torch.optim.Optimizer, *_: object) -> None:
        if type(optimizer) is torch.optim.Adam:  # the DP wrapper calls the Adam it wraps
            updates.append(1)

    handle = register_optimizer_step_post_hook(count)
    try:
        run = train_generator(settings, epsilon=4.0, round_id="r-ldm")
    finally:
        handle.remove()
    # Four noise draws per patient, one optimiser step and one charge per Poisson batch.
    assert run.privacy.steps == len(updates) > 0
    assert 0 < run.privacy.epsilon <= 4.0
    entry = Ledger(settings.paths.ledger).runs()[run.run_id]
    assert entry.state == "complete" and entry.steps == run.privacy.steps
    assert entry.epsilon == pytest.approx(run.privacy.epsilon)
    assert run.generator.backend == "ldm3d"
    assert (run.generator.foundation_id, run.generator.foundation_sha256) == (
        "tiny-test",
        tiny_foundation.sha256,
    )

    public = load_file(str(tiny_foundation.folder / "denoiser.safetensors"))
    tuned = load_file(str(settings.paths.models / run.run_id / "generator.safetensors"))
    changed = {k for k, v in public.items() if not torch.equal(v, tuned[f"denoiser.{k}"])}
    assert changed and all(k.startswith("class_embedding.") or ".time_emb_proj." in k for k in changed)
    autoencoder = load_file(str(tiny_foundation.folder / "autoencoder.safetensors"))
    assert all(torch.equal(v, tuned[f"autoencoder.{k}"]) for k, v in autoencoder.items())

    backend = load_backend("ldm3d", settings.paths.models / run.run_id, torch.device("cpu"))
    drawn = backend.sample(np.array([0, 3], dtype=np.int64), seed=1)
    assert drawn.images.shape == (2, *settings.preprocessing.box) and drawn.masks.dtype == np.uint8


def test_a_site_refuses_a_missing_a_mismatched_or_a_misfitting_foundation(
    trained_site: TrainedSite, tiny_foundation: TinyFoundation
) -> None:
    settings = trained_site.settings
    cpu = torch.device("cpu")
    with pytest.raises(GeneratorError, match="set \\[generator\\] foundation"):
        new_backend(_ldm3d(settings, tiny_foundation, foundation=None), cpu)
    with pytest.raises(GeneratorError, match=f"not {'a' * 64} as asked"):
        new_backend(_ldm3d(settings, tiny_foundation, foundation_sha256="a" * 64), cpu)
    other_box = settings.model_copy(
        update={"preprocessing": settings.preprocessing.model_copy(update={"box": (32, 32, 64)})}
    )
    with pytest.raises(GeneratorError, match="draws 32x32x48 boxes, this site crops 32x32x64"):
        new_backend(_ldm3d(other_box, tiny_foundation), cpu)
    backend = new_backend(_ldm3d(settings, tiny_foundation), cpu)
    assert isinstance(backend, LatentDiffusion3D) and backend.foundation() == (
        "tiny-test",
        tiny_foundation.sha256,
    )


def test_a_poisson_batch_that_draws_no_patient_is_still_a_charged_noisy_step(
    trained_site: TrainedSite, tiny_foundation: TinyFoundation, tmp_path: Path
) -> None:
    from shared.privacy import Mechanism
    from site_agent.generator.backend import TrainingPlan
    from site_agent.generator.checkpoints import FileCheckpointer
    from site_agent.generator.training_set import load_training_set
    from site_agent.ingest.store import CaseStore

    settings = _ldm3d(trained_site.copy(tmp_path / "site").settings, tiny_foundation)
    with CaseStore(settings.paths.store) as store:
        data = load_training_set(store, settings.classes)
    backend = new_backend(settings, torch.device("cpu"))
    before = {name: p.detach().clone() for name, p in backend.denoiser.named_parameters() if p.requires_grad}
    mechanism = Mechanism(noise_multiplier=1.0, sample_rate=1e-9, steps=3)  # every batch is empty
    plan = TrainingPlan(
        mechanism=mechanism, max_grad_norm=1.0, batch_size=4, steps=3, accountant="rdp", seed=1
    )
    charged = backend.train(
        data, plan, checkpoints=FileCheckpointer(tmp_path / "ck", every_seconds=1e9), on_step=lambda r: None
    )
    assert charged == 3
    after = dict(backend.denoiser.named_parameters())
    assert any(not torch.equal(before[name], after[name]) for name in before)  # the noise moved them
