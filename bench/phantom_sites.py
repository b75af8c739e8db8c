"""Phantom hospitals run by the real site code, for the benchmarks that compare synthetic with real.

Each hospital is a site folder made by `write_site_toml`, whose phantom patients are written as
real DICOM and read by the site's own ingestion (`site_agent.ingest.pipeline.ingest`), with the
train/held-out split fixed by labels.csv so that every class is on both sides. Generators are
trained by `train_generator` and their sets released by `release_set`, ledger and audit included:
exactly what `site-agent train` and `site-agent export` run.

Unlike a site, a benchmark may read a phantom hospital's stored cases out into a dataset folder:
they are phantoms, and the comparison needs the real-data models that federation forbids.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.classes import DEFAULT_CLASSES
from shared.phantom import PhantomRequest, write_phantom
from shared.schemas import DatasetCard
from shared.synthetic_set import SetItem, write_synthetic_set
from site_agent.config import SiteSettings, load_site_settings
from site_agent.ingest.pipeline import ingest
from site_agent.ingest.store import CaseStore
from site_agent.site_toml import write_site_toml

Say = Callable[[str], None]


@dataclass(frozen=True)
class SiteScale:
    """How big a phantom hospital is and how its site agent is configured."""

    train_per_class: int
    test_per_class: int
    box: tuple[int, int, int]
    spacing_mm: float
    matrix: int  # phantom pixels per row: about the box's spacing, so writing stays quick
    slice_mm: float
    generator_width: int
    generator_epochs: float
    generator_batch: int


def site_settings(home: Path, scale: SiteScale) -> SiteSettings:
    """The settings of the site at `home`, sized for the benchmark. The cap is lifted: each
    benchmark site copy spends one budget once, and the benchmark reports what it spent."""
    settings = load_site_settings(home / "site.toml")
    return settings.model_copy(
        update={
            "preprocessing": settings.preprocessing.model_copy(
                update={"box": scale.box, "spacing_mm": scale.spacing_mm}
            ),
            "generator": settings.generator.model_copy(
                update={
                    "width": scale.generator_width,
                    "epochs": scale.generator_epochs,
                    "batch_size": scale.generator_batch,
                    "checkpoint_seconds": 1e9,  # nothing here needs resuming
                }
            ),
            "privacy": settings.privacy.model_copy(
                update={"epsilon_cap": 1e6, "allow_non_private_export": True}  # phantom data only
            ),
        }
    )


def build_site(
    root: Path, profile: str, scale: SiteScale, *, seed: int, say: Say, train: bool = True
) -> Path:
    """Write and ingest one phantom hospital of `profile` under root/profile; return its folder.
    With `train` false every patient is held out (a hospital that only evaluates)."""
    home = root / profile
    if (home / "site.toml").exists():
        return home  # built by an earlier run with --keep
    write_site_toml(home, profile)
    per_class = (scale.train_per_class if train else 0) + scale.test_per_class
    dicom = home / "phantom-dicom"
    say(f"{profile}: writing {per_class * 6} phantom patients as DICOM")
    write_phantom(
        PhantomRequest(
            out=dicom,
            cases=per_class * 6,
            profile=profile,
            seed=seed,
            matrix=scale.matrix,
            slice_mm=scale.slice_mm,
            balanced=True,
        )
    )
    labels = _split_labels(dicom / "labels.csv", scale.train_per_class if train else 0)
    say(f"{profile}: ingesting them with the site's own pipeline")
    report = ingest(site_settings(home, scale), dicom, labels_csv=labels)
    if report.refused:
        raise RuntimeError(f"{profile}: the site refused {len(report.refused)} phantom series")
    shutil.rmtree(dicom)  # the store holds what the site uses; the DICOM is large
    return home


def _split_labels(labels_csv: Path, train_per_class: int) -> Path:
    """labels.csv with a split column: the first `train_per_class` patients of each class train."""
    with labels_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["label"]] = seen.get(row["label"], 0) + 1
        row["split"] = "train" if seen[row["label"]] <= train_per_class else "holdout"
    out = labels_csv.with_name("labels-split.csv")
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["study_uid", "label", "mask", "split"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return out


def copy_site(home: Path, target: Path) -> Path:
    """A copy of the site with its store and a fresh ledger: one budget spent once per copy."""
    if not target.exists():
        shutil.copytree(home, target, ignore=shutil.ignore_patterns("models", "exports", "privacy"))
        write_site_toml(target, home.name, force=True)  # recreates the folders left out
    return target


def store_items(settings: SiteSettings, split: str) -> list[SetItem]:
    with CaseStore(settings.paths.store) as store:
        items = []
        for case in store.all_latest():
            if case.split != split or case.label is None:
                continue
            _, image, mask = store.load(case.case_id, case.version)
            assert mask is not None
            items.append(SetItem(case.case_id, image, mask, case.label, settings.site_id))
    return items


def write_dataset(
    target: Path, items: list[SetItem], dataset_id: str, *, like: SiteScale | DatasetCard
) -> Path:
    """Write `items` (phantom or synthetic) as a dataset folder the diagnostic model trains on."""
    if target.exists():
        return target
    counts = {name: sum(1 for i in items if i.label == name) for name in DEFAULT_CLASSES}
    box = like.box if isinstance(like, SiteScale) else like.volume_shape
    spacing = like.spacing_mm if isinstance(like, SiteScale) else like.spacing_mm[0]
    card = DatasetCard(
        dataset_id=dataset_id[:64],
        version=1,
        description=f"benchmark dataset {dataset_id}: phantom patients or synthetic volumes, no real patient",
        licence="CC0-1.0",
        classes=DEFAULT_CLASSES,
        class_counts=counts,
        volume_shape=box,
        spacing_mm=(spacing,) * 3,
        intensity="CT window [-160, 240] HU scaled to [-1, 1]",
    )
    write_synthetic_set(target, items, card, spacing_mm=spacing)
    return target
