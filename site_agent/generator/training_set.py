"""The generator's training examples: one per patient, from the labelled, non-held-out store cases."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from site_agent.generator.backend import GeneratorError, TrainingSet
from site_agent.ingest.store import CaseRecord, CaseStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    chosen: list[CaseRecord]
    without_mask: int  # labelled training cases left out: the generator learns image and mask together
    extra_studies: int  # further studies of a patient already chosen (one example per patient)


def select_cases(store: CaseStore) -> Selection:
    candidates = [c for c in store.all_latest() if c.label is not None and c.split == "train"]
    without_patient = [c for c in candidates if c.patient is None]
    if without_patient:
        raise GeneratorError(
            f"{len(without_patient)} training cases were stored by an older fedsynth without their "
            "patient pseudonym, so patients cannot be counted; run `site-agent ingest` on the same "
            "DICOM folder again to record it"
        )
    with_mask = [c for c in candidates if c.has_mask]
    by_patient: dict[str, CaseRecord] = {}
    for case in sorted(with_mask, key=lambda c: c.case_id):
        by_patient.setdefault(str(case.patient), case)
    return Selection(
        chosen=sorted(by_patient.values(), key=lambda c: c.case_id),
        without_mask=len(candidates) - len(with_mask),
        extra_studies=len(with_mask) - len(by_patient),
    )


def load_training_set(store: CaseStore, classes: tuple[str, ...], *, minimum: int = 4) -> TrainingSet:
    selection = select_cases(store)
    if len(selection.chosen) < minimum:
        raise GeneratorError(
            f"the store holds {len(selection.chosen)} labelled training patients with a lesion mask; "
            f"a generator needs at least {minimum} (held-out and unlabelled cases are never trained on)"
        )
    if selection.without_mask or selection.extra_studies:
        log.info(
            "generator training set: %d patients (%d labelled cases without a mask and %d extra "
            "studies of the same patients left out)",
            len(selection.chosen),
            selection.without_mask,
            selection.extra_studies,
        )
    volumes, labels = [], []
    for case in selection.chosen:
        _, image, mask = store.load(case.case_id, case.version)
        assert mask is not None
        volumes.append(np.stack([image, np.where(mask > 0, 1.0, -1.0)]).astype(np.float32))
        labels.append(classes.index(str(case.label)))
    shapes = {v.shape for v in volumes}
    if len(shapes) != 1:
        raise GeneratorError(
            "store cases have different box sizes (site.toml [preprocessing] changed since they were "
            "ingested); ingest them again"
        )
    return TrainingSet(
        volumes=torch.from_numpy(np.stack(volumes)),
        labels=torch.as_tensor(labels, dtype=torch.int64),
        classes=classes,
    )
