"""Each site's validated set is stored; the pooled set grows by one version per completed round.

    <data>/datasets/pooled/v<N>/       the pooled set, in the shared synthetic-set layout
    <data>/datasets/pooled/v<N>.json   which site sets it holds (relative to the data folder)

Version N holds every site set of version N-1 plus this round's, as long as their volumes have the
same shape and spacing. Its card lists each (site, round) contribution with what that site spent.
Versions are written once and never changed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from coordinator.config import CoordinatorSettings
from shared.diagnosis.dataset import load_dataset
from shared.schemas import DatasetCard, RoundRequest, SiteContribution, SyntheticSetManifest
from shared.synthetic_set import SetItem, write_synthetic_set

POOLED_ID = "pooled"
_VERSION = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class PooledSet:
    folder: Path
    version: int
    card: DatasetCard


def pooled_root(settings: CoordinatorSettings) -> Path:
    return settings.paths.data / "datasets" / POOLED_ID


def store_site_set(
    target: Path, items: list[SetItem], manifest: SyntheticSetManifest, request: RoundRequest
) -> None:
    card = DatasetCard(
        dataset_id=f"{manifest.site_id}-{manifest.round_id}"[:64],
        version=1,
        description=f"Synthetic set of site {manifest.site_id}, round {manifest.round_id}",
        classes=request.classes,
        class_counts=manifest.class_counts(),
        volume_shape=request.volume_shape,
        spacing_mm=request.spacing_mm,
        sites=(
            SiteContribution(
                site_id=manifest.site_id,
                round_id=manifest.round_id,
                samples=len(manifest.items),
                privacy=manifest.privacy,
                generator=manifest.generator,
            ),
        ),
    )
    write_synthetic_set(target, items, card, spacing_mm=request.spacing_mm[0])


def latest_version(settings: CoordinatorSettings) -> int:
    root = pooled_root(settings)
    versions = [int(m.group(1)) for p in root.glob("v*") if p.is_dir() and (m := _VERSION.match(p.name))]
    return max(versions, default=0)


def build_pooled(settings: CoordinatorSettings, new_sets: list[Path], request: RoundRequest) -> PooledSet:
    data_root = settings.paths.data
    previous = latest_version(settings)
    sources: list[str] = []
    if previous:
        index = json.loads((pooled_root(settings) / f"v{previous}.json").read_text())
        if index.get("round_id") == request.round_id:
            # This round pooled already: an earlier attempt whose ServerApp died before it could
            # record the version. Its set stands; a second one would hold the same sets twice.
            folder = pooled_root(settings) / f"v{previous}"
            return PooledSet(folder, previous, DatasetCard.read(folder / "card.json"))
        sources = list(index["sources"])
    sources += [p.relative_to(data_root).as_posix() for p in new_sets]

    items: list[SetItem] = []
    contributions: list[SiteContribution] = []
    for source in sources:
        data = load_dataset(data_root / source)  # verifies its checksums again
        card = data.card
        if tuple(card.volume_shape) != tuple(request.volume_shape) or card.spacing_mm != request.spacing_mm:
            continue  # an older round at another size stays in its own version
        contributions.extend(card.sites)
        prefix = f"{card.sites[0].round_id}-{card.sites[0].site_id}"
        for n in range(len(data)):
            items.append(
                SetItem(
                    name=f"{prefix}-{n:05d}",
                    image=data.images[n],
                    mask=data.masks[n],
                    label=card.classes[int(data.labels[n])],
                    site=data.sites[n] if data.sites else card.sites[0].site_id,
                )
            )
    version = previous + 1
    counts = Counter(item.label for item in items)
    card = DatasetCard(
        dataset_id=POOLED_ID,
        version=version,
        description=f"Pooled synthetic mediastinal CT from {len({c.site_id for c in contributions})} sites",
        classes=request.classes,
        class_counts={name: counts.get(name, 0) for name in request.classes},
        volume_shape=request.volume_shape,
        spacing_mm=request.spacing_mm,
        sites=tuple(contributions),
    )
    folder = pooled_root(settings) / f"v{version}"
    write_synthetic_set(folder, items, card, spacing_mm=request.spacing_mm[0])
    index_path = pooled_root(settings) / f"v{version}.json"
    tmp = index_path.with_name(f".{index_path.name}.tmp")
    tmp.write_text(
        json.dumps({"version": version, "round_id": request.round_id, "sources": sources}, indent=2)
    )
    tmp.replace(index_path)
    return PooledSet(folder, version, card)
