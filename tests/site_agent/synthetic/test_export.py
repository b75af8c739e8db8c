"""What leaves a site: the DESIGN.md layout, a card that states the spend, and nothing real."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from shared.schemas import DatasetCard
from shared.synthetic_set import verify_synthetic_set
from site_agent.config import SiteAudit
from site_agent.generator.training_run import train_generator
from site_agent.ingest.store import CaseStore
from site_agent.privacy.budget import current_spend
from site_agent.privacy.ledger import Ledger
from site_agent.synthetic.audit import audit
from site_agent.synthetic.export import ExportRefused, export_set
from tests.conftest import TEST_BOX, TEST_SPACING_MM
from tests.leak_checks import nearest_real_pair, site_secrets
from tests.site_agent.conftest import TrainedSite


def test_an_export_has_the_layout_a_card_that_states_the_spend_and_a_ledger_entry(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    site = trained_site.copy(tmp_path / "site")
    settings = site.settings
    out = tmp_path / "out"
    result = export_set(settings, out, per_class=2, run_id=None, seed=1)
    assert verify_synthetic_set(out) == 2 + 2 * 12 + 1  # dataset.json, labels.csv, images, masks, card
    card = DatasetCard.read(out / "card.json")
    (contribution,) = card.sites
    assert contribution.privacy == trained_site.run.privacy
    assert contribution.generator == trained_site.run.generator
    assert card.class_counts == {name: 2 for name in settings.classes}
    assert card.volume_shape == TEST_BOX and card.spacing_mm == (TEST_SPACING_MM,) * 3
    datalist = json.loads((out / "dataset.json").read_text())["training"]
    assert len(datalist) == 12 and {d["site"] for d in datalist} == {"site-t"}
    local = [p for p in settings.paths.exports.iterdir() if p.is_dir()]
    assert len(local) == 1 and verify_synthetic_set(local[0]) == 27  # the site keeps what left
    release = Ledger(settings.paths.ledger).runs()[trained_site.run.run_id].releases
    assert [r.set_sha256 for r in release] == [result.sums_sha256]


def test_no_exported_byte_carries_a_real_voxel_header_value_uid_or_path(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    site = trained_site.copy(tmp_path / "site")
    settings = site.settings
    out = tmp_path / "out"
    export_set(settings, out, per_class=2, run_id=None, seed=2)

    blobs = []
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            blobs.append(gzip.decompress(data) if path.suffix == ".gz" else data)
    everything = b"\n".join(blobs)
    forbidden, real = site_secrets(settings, site.dicom)
    forbidden.add(str(tmp_path))
    assert len(forbidden) > 24 * 5  # at least the study, series and patient values of every study
    leaked = sorted(s for s in forbidden if s.encode() in everything)
    assert leaked == []

    import nibabel as nib

    exported = np.stack([np.asarray(nib.load(p).dataobj) for p in sorted((out / "images").iterdir())])
    rms = np.sqrt(((exported[:, None] - real[None]) ** 2).mean(axis=(2, 3, 4)))  # every pair
    # No sample is nearer a patient than patients are to each other.
    assert rms.min() > 0.5 * nearest_real_pair(real)


def test_a_non_private_generator_cannot_export_unless_the_site_allows_it(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    site = trained_site.copy(tmp_path / "site")
    settings = site.settings
    run = train_generator(settings, epsilon=math.inf, epochs=1)
    assert math.isinf(run.privacy.epsilon) and run.privacy.accountant == "none"
    with pytest.raises(ExportRefused, match="without differential privacy"):
        export_set(settings, tmp_path / "out", per_class=1, run_id=None, seed=0)
    assert not (tmp_path / "out").exists()
    assert math.isfinite(current_spend(settings).epsilon)

    site.config.write_text(
        site.config.read_text().replace("allow_non_private_export = false", "allow_non_private_export = true")
    )
    allowed = site.settings
    export_set(allowed, tmp_path / "out", per_class=1, run_id=None, seed=0)
    card = DatasetCard.read(tmp_path / "out" / "card.json")
    assert math.isinf(card.sites[0].privacy.epsilon)  # the card says so
    assert math.isinf(current_spend(allowed).epsilon)  # and the site's budget knows no guarantee is left


def test_the_audit_blocks_near_copies_and_passes_fresh_patients(trained_site: TrainedSite) -> None:
    settings = trained_site.settings
    with CaseStore(settings.paths.store) as store:
        cases = [c for c in store.all_latest() if c.label is not None]
        boxes = {c.case_id: store.load(c.case_id)[1] for c in cases}
    training = np.stack([boxes[c.case_id] for c in cases if c.split == "train"])
    holdout = np.stack([boxes[c.case_id] for c in cases if c.split == "holdout"])
    rules = SiteAudit()
    rng = np.random.default_rng(0)
    copies = training[:6] + rng.normal(0, 0.01, training[:6].shape).astype(np.float32)
    blocked = audit(copies, training, holdout, spacing_mm=4.0, rules=rules)
    assert not blocked.passed and blocked.near_copies == 6
    # Fresh patients (half the held-out set) against the training set, the other half as reference.
    fresh = audit(holdout[: len(holdout) // 2], training, holdout, spacing_mm=4.0, rules=rules)
    assert fresh.near_copies == 0
