"""Diagnostic model speed: training and inference volumes per second, segmenter and classifier.

    python -m bench.diagnosis [--repeats 5]

Times the real networks of `shared.diagnosis.networks`: the class segmenter (the default task,
background plus five lesion classes) beside the whole-volume classifier (the earlier default), at
the CPU box (48x48x64) and, on a CUDA machine, at the GPU box (96x96x128) too: one training step
(forward, backward, AdamW) on a batch of 8, and inference on batches of 8, as medians over
repeats after one warm-up, all in one run. Beside them, the default model as a site runs it: the
segmenter, the lesion features and the case head, from volumes to class probabilities
(`DiagnosticModel.probabilities`; its training step is the segmenter's, the head is fitted once
afterwards), and the segmenter's training step on the crops the default recipe trains on (two
thirds of the box along each axis). The network's speed does not depend on the voxels, so the
volumes are random; the features' does, and an untrained segmenter on random volumes calls the
whole box lesion, the slowest case for them. Writes bench/results/diagnosis.json
(bench/results/diagnosis-cuda.json on a GPU).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from monai.losses import DiceCELoss

from bench.common import write_result
from coordinator.diagnosis.training import TrainOptions, crop_size
from shared.crop_box import CPU_BOX, GPU_BOX, Box, box_text
from shared.diagnosis.bundle import DiagnosticModel
from shared.diagnosis.head import CaseHead
from shared.diagnosis.lesion_features import feature_names
from shared.diagnosis.networks import build_classifier, build_segmenter

BATCH = 8


def _time(fn: object, repeats: int, device: torch.device) -> float:
    assert callable(fn)
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _one(
    name: str,
    net: torch.nn.Module,
    loss_fn: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    repeats: int,
) -> dict[str, object]:
    device = x.device
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def train_step() -> None:
        net.train()
        loss = loss_fn(net(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def infer() -> None:
        net.eval()
        net(x)

    train_s, infer_s = _time(train_step, repeats, device), _time(infer, repeats, device)
    box = box_text(tuple(x.shape[2:]))  # type: ignore[arg-type]
    print(
        f"{name} {box} on {device.type}: train {BATCH / train_s:.1f} volumes/s, "
        f"inference {BATCH / infer_s:.1f} volumes/s",
        flush=True,
    )
    return {
        "network": name,
        "box": box,
        "batch": BATCH,
        "device": device.type,
        "parameters": sum(p.numel() for p in net.parameters()),
        "train_volumes_per_s": round(BATCH / train_s, 1),
        "inference_volumes_per_s": round(BATCH / infer_s, 1),
    }


def _whole_model(segmenter: torch.nn.Module, x: torch.Tensor, repeats: int) -> dict[str, object]:
    """Inference of the default model: segmenter, lesion features and case head."""
    lesions = tuple(f"lesion_{k}" for k in range(5))
    metadata = {
        "classes": ["normal", *lesions],
        "input": {"spacing_mm": [4.0] * 3, "intensity": "CT window [-160, 240] HU scaled to [-1, 1]"},
    }
    head = CaseHead(len(feature_names(lesions)), 6).eval()
    model = DiagnosticModel(None, segmenter, metadata, head)
    images = x[:, 0].cpu().numpy()
    infer_s = _time(lambda: model.probabilities(images, device=x.device, batch=BATCH), repeats, x.device)
    box = box_text(tuple(x.shape[2:]))  # type: ignore[arg-type]
    print(f"segmenter and case head {box} on {x.device.type}: inference {BATCH / infer_s:.1f} volumes/s")
    return {
        "network": "class segmenter and case head (the default model, volumes to class probabilities)",
        "box": box,
        "batch": BATCH,
        "device": x.device.type,
        "parameters": sum(p.numel() for net in (segmenter, head) for p in net.parameters()),
        "train_volumes_per_s": None,
        "inference_volumes_per_s": round(BATCH / infer_s, 1),
    }


def measure(box: Box, repeats: int, device: torch.device) -> list[dict[str, object]]:
    torch.manual_seed(0)
    x = torch.rand(BATCH, 1, *box, device=device) * 2 - 1
    y = torch.randint(0, 6, (BATCH,), device=device)
    m = torch.randint(0, 6, (BATCH, 1, *box), device=device).float()
    classifier = build_classifier(box=box, classes=6).to(device)
    segmenter = build_segmenter(lesion_classes=5).to(device)
    dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    cx, cy, cz = crop_size(box, TrainOptions().crop_share or 1.0)
    cropped = _one(
        "class segmenter trained on crops (the default recipe; a volume is one crop)",
        segmenter,
        dice_ce,
        x[..., :cx, :cy, :cz].contiguous(),
        m[..., :cx, :cy, :cz].contiguous(),
        repeats,
    )
    cropped["box"] = box_text(box)  # what it learns to read; inference runs on whole boxes
    cropped["inference_volumes_per_s"] = None
    return [
        _one("class segmenter (the network alone)", segmenter, dice_ce, x, m, repeats),
        cropped,
        _whole_model(segmenter, x, repeats),
        _one("classifier", classifier, torch.nn.CrossEntropyLoss(), x, y, repeats),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    rows = []
    for box in (CPU_BOX, GPU_BOX) if gpu else (CPU_BOX,):
        rows += measure(box, args.repeats, device)
    path = write_result(
        "diagnosis-cuda" if gpu else "diagnosis",
        {"threads": torch.get_num_threads(), "configurations": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
