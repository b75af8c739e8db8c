"""What the case head adds: the yardstick's pooled segmenters scored with and without their head.

    python -m bench.head_ablation --work DIR [--seeds 3]

DIR is a `bench.yardstick --work DIR` folder after its run. The same models score the same held-out
patients twice: through their case head, and with the head set aside, so the probabilities are
the lesion class volumes of the segmenter alone (what every model used before the head). Then
the ceiling of the features themselves: a head fitted on the features of the training patients'
true lesion masks, scored on the held-out patients' true masks, as if the segmenter found every
lesion exactly but could not tell its class. Prints
macro AUC per seed, the mean change and the ceiling; trains no network.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from shared.diagnosis.bundle import DiagnosticModel, lesion_classes, load_model
from shared.diagnosis.dataset import LoadedDataset, load_dataset
from shared.diagnosis.head import fit_head
from shared.diagnosis.lesion_features import lesion_features, window_of
from shared.diagnosis.metrics import macro_auc


def true_mask_features(data: LoadedDataset, model: DiagnosticModel) -> np.ndarray:
    """The case head's features with the true lesion mask as a certain segmenter's output that
    says nothing of the class (its class shares even), so the head must read the class from the
    lesion's size, HU mix, place and margin, as from a perfect but class-blind segmenter."""
    assert data.masks is not None
    lesions = len(lesion_classes(model.classes))
    inside = torch.from_numpy((data.masks > 0).astype(np.float32)).unsqueeze(1)
    certain = torch.cat([1.0 - inside, inside.expand(-1, lesions, *inside.shape[2:]) / lesions], dim=1)
    return lesion_features(
        data.images,
        certain,
        window_hu=window_of(model.metadata["input"]["intensity"]),
        voxel_ml=model.voxel_ml,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="a bench.yardstick --work folder")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    cpu = torch.device("cpu")
    tests = {t: load_dataset(args.work / "data" / f"test-{t}") for t in ("internal", "external")}
    change: dict[str, list[float]] = {t: [] for t in tests}
    for seed in range(args.seeds):
        model = load_model(args.work / "models" / f"real-pooled-segment-seed{seed}", device=cpu)
        if model.head is None:
            raise SystemExit(f"seed {seed}'s model has no case head: train it again with this version")
        cells = []
        for name, data in tests.items():
            with_head = macro_auc(model.probabilities(data.images, device=cpu), data.labels)
            head, model.head = model.head, None
            volumes = macro_auc(model.probabilities(data.images, device=cpu), data.labels)
            model.head = head
            assert with_head is not None and volumes is not None  # every class has held-out cases
            change[name].append(with_head - volumes)
            cells.append(f"{name} {volumes:.3f} without the head, {with_head:.3f} with it")
        print(f"seed {seed}: " + "; ".join(cells), flush=True)
    print("mean change: " + ", ".join(f"{t} {statistics.mean(v):+.3f}" for t, v in change.items()))
    train = load_dataset(args.work / "data" / "real-pooled")
    head = fit_head(true_mask_features(train, model), train.labels, len(model.classes))
    cells = []
    for name, data in tests.items():
        with torch.no_grad():
            logits = head(torch.as_tensor(true_mask_features(data, model)))
        cells.append(f"{name} {macro_auc(torch.softmax(logits, 1).numpy(), data.labels):.3f}")
    print("ceiling, the head on true masks: " + ", ".join(cells))


if __name__ == "__main__":
    main()
