"""What an attacker learns about the real patients: membership inference and a one-run audit.

    python -m bench.privacy [--scale ci|full] [--work DIR] [--canaries 48] [--foundation DIR]

On the phantom federation of bench/synthetic_runs.py (reused from `--work` when bench.utility ran
there first; built otherwise):

The generators are dpgan3d's at each epsilon, or, with `--foundation` (a foundation folder at the
scale's box), lesionstats' (results then go to bench/results/privacy-lesionstats.json).

1. **Distance attack on every generator.** For each hospital and epsilon, the generator samples
   `--samples` volumes per class; a patient scores by how near its nearest sample is (the audit's
   8 mm feature space). Members are the patients the generator trained on, non-members the
   hospital's held-out patients. Pooled over the four hospitals at each epsilon. As a check that
   the attack works, the same attack with the training patients themselves as the "samples" (a
   generator that copies) is reported too.
2. **Shadow-model attack on the diagnostic model**, in the spirit of the DiffGuard study: two
   shadow models are trained the way the real-data model is, on fresh phantom patients of the same
   profiles with known membership; a logistic regression on the models' confidence (true-class
   probability, loss, top probability, entropy) learns members from non-members there, and is
   applied to the targets: the model trained on the pooled real data and the models trained only on
   the pooled synthetic sets at each epsilon. Members are the real patients that trained the model
   (or its generators), non-members the held-out patients.
3. **One-run canary audit** (Steinke, Nasr and Jagielski 2023; bench/canary_audit.py) of the
   generator of `site_a` at each epsilon: an empirical lower bound on epsilon next to the
   accountant's.

Reports ROC AUC and TPR at 1% FPR for each attack. Writes bench/results/privacy.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.canary_audit import audit_guesses, canary_scores, epsilon_lower_bound, make_canaries
from bench.common import write_result
from bench.membership import LogisticAttack, attack_metrics, confidence_features, nearest_distance
from bench.phantom_sites import build_site, copy_site, site_settings, store_items, write_dataset
from bench.synthetic_runs import (
    GAN_RUNS,
    SCALES,
    SEED,
    GeneratorRun,
    Release,
    Scale,
    build_sites,
    eps_name,
    generator_settings,
    train_releases,
)
from bench.utility import FOUNDATION_RUNS, prepare_data, say, train_all
from shared.classes import DEFAULT_CLASSES
from shared.devices import choose_device
from shared.phantom.profiles import TRAINING_PROFILES
from shared.synthetic_set import SetItem

AUDITED_SITE = "site_a"


def _cubes(items: list[SetItem]) -> np.ndarray:
    return np.stack([i.image for i in items])


def _generator(release: Release, scale: Scale) -> Any:
    from site_agent.generator.registry import load_backend
    from site_agent.synthetic.export import latest_run

    settings = site_settings(release.home, scale.site)
    run = latest_run(settings)
    return load_backend(run.generator.backend, settings.paths.models / run.run_id, choose_device("auto"))


def distance_attacks(
    releases: list[Release],
    runs: tuple[GeneratorRun, ...],
    homes: dict[str, Path],
    scale: Scale,
    per_class: int,
) -> dict[str, Any]:
    from site_agent.synthetic.audit import features

    spacing = scale.site.spacing_mm
    out: dict[str, Any] = {}
    members_by_site, others_by_site = {}, {}
    for profile in TRAINING_PROFILES:
        settings = site_settings(homes[profile], scale.site)
        members_by_site[profile] = features(_cubes(store_items(settings, "train")), spacing)
        others_by_site[profile] = features(_cubes(store_items(settings, "holdout")), spacing)

    def pooled(reference_of: dict[str, torch.Tensor]) -> dict[str, Any]:
        m, o, per_site = [], [], {}
        for profile in TRAINING_PROFILES:
            sm = -nearest_distance(members_by_site[profile], reference_of[profile])
            so = -nearest_distance(others_by_site[profile], reference_of[profile])
            per_site[profile] = attack_metrics(sm, so)["auc"]
            m.append(sm)
            o.append(so)
        return {**attack_metrics(np.concatenate(m), np.concatenate(o)), "auc_by_site": per_site}

    out["copying_generator_check"] = pooled(members_by_site)  # samples = the training patients
    labels = np.repeat(np.arange(6, dtype=np.int64), per_class)
    for run in runs:
        samples = {}
        for r in releases:
            if (r.backend, r.epsilon_asked) == (run.backend, run.epsilon):
                drawn = _generator(r, scale).sample(labels, seed=SEED + 7)
                samples[r.profile] = features(drawn.images, spacing)
        key = f"eps{eps_name(run.epsilon)}"
        out[key] = pooled(samples)
        say(f"distance attack on {run.name}: AUC {out[key]['auc']:.3f}")
    return out


def shadow_attacks(
    work: Path,
    homes: dict[str, Path],
    releases: list[Release],
    runs: tuple[GeneratorRun, ...],
    scale: Scale,
    foundation: Path | None,
) -> dict[str, Any]:
    from coordinator.diagnosis.training import TrainOptions, stratified_split, train_model
    from shared.diagnosis.bundle import load_model
    from shared.diagnosis.dataset import load_dataset
    from shared.diagnosis.model_files import METADATA

    device = choose_device("auto")
    # The same data and models as bench.utility's in the same --work (trained here when missing).
    data = prepare_data(work, homes, releases, runs, runs[0], scale, foundation)
    wanted = {"real-pooled", *(run.name for run in runs)}
    targets = {n: p for n, p in data["configs"].items() if n in wanted}
    trained, _ = train_all(work, targets, scale, again=[], seeds=1)  # seed 0: the utility run's models
    options = TrainOptions(task="both", epochs=scale.diagnosis_epochs, patience=scale.diagnosis_patience)

    # Shadow hospitals: fresh phantom patients of the same profiles, through the same DICOM ingestion.
    shadow_root = work / "shadow"
    if not (shadow_root / "pool").exists():
        shadow_scale = replace(scale.site, test_per_class=scale.site.train_per_class)
        items = []
        for n, profile in enumerate(TRAINING_PROFILES):
            home = build_site(
                shadow_root / "sites", profile, shadow_scale, seed=SEED + 200 + n, say=say, train=False
            )
            items += store_items(site_settings(home, scale.site), "holdout")
        write_dataset(shadow_root / "pool", items, "shadow-pool", like=scale.site)
    pool = load_dataset(shadow_root / "pool")
    features_all, members_all = [], []
    for shadow in range(2):
        rng = np.random.default_rng(SEED + shadow)
        inside = rng.random(len(pool)) < 0.5
        folder = shadow_root / f"model-{shadow}"
        if not (folder / METADATA).exists():
            items = [
                SetItem(
                    f"s{n:05d}",
                    pool.images[n],
                    pool.masks[n],
                    pool.card.classes[int(pool.labels[n])],
                    "shadow",
                )
                for n in np.flatnonzero(inside)
            ]
            dataset = write_dataset(
                shadow_root / f"data-{shadow}", items, f"shadow-{shadow}", like=scale.site
            )
            train_model(dataset, folder, options)
            say(f"shadow model {shadow + 1}/2 trained on {len(items)} patients")
        # What the shadow really trained on: the validation part of its set only steered early stopping.
        train_idx, _ = stratified_split(pool.labels[inside], 0.2, options.seed)
        member = np.zeros(len(pool), bool)
        member[np.flatnonzero(inside)[train_idx]] = True
        keep = member | ~inside
        probabilities = load_model(folder, device=device).probabilities(pool.images[keep], device=device)
        features_all.append(confidence_features(probabilities, pool.labels[keep]))
        members_all.append(member[keep])
    attack = LogisticAttack().fit(np.concatenate(features_all), np.concatenate(members_all))

    real_pooled = load_dataset(data["configs"]["real-pooled"])
    held_out = load_dataset(data["tests"]["internal"])
    train_idx, _ = stratified_split(real_pooled.labels, 0.2, options.seed)
    out: dict[str, Any] = {"shadow_models": 2, "shadow_patients": len(pool)}
    for name, model in trained.items():
        net = load_model(model["folder"], device=device)
        # The real-data model trained on its training split; a synthetic model's generators on all of them.
        members = real_pooled.images[train_idx] if name == "real-pooled" else real_pooled.images
        member_labels = real_pooled.labels[train_idx] if name == "real-pooled" else real_pooled.labels
        sm = attack.score(confidence_features(net.probabilities(members, device=device), member_labels))
        so = attack.score(
            confidence_features(net.probabilities(held_out.images, device=device), held_out.labels)
        )
        out[name] = attack_metrics(sm, so)
        say(f"shadow attack on {name}: AUC {out[name]['auc']:.3f}")
    return out


def _canary_home(work: Path, run: GeneratorRun) -> Path:
    # dpgan3d's audits keep the folders they had before other backends were audited.
    return work / "canary" / (f"eps{eps_name(run.epsilon)}" if run.backend == "dpgan3d" else run.name)


def canary_audits(
    work: Path,
    homes: dict[str, Path],
    runs: tuple[GeneratorRun, ...],
    scale: Scale,
    m: int,
    foundation: Path | None,
) -> dict[str, Any]:
    if m < 12 or m % 6:
        raise SystemExit(f"--canaries must be a multiple of 6 (one per class), at least 12; got {m}")
    todo = [r for r in runs if not (_canary_home(work, r) / "audit.json").exists()]
    if todo:
        # The canaries' patients: fresh phantoms of the audited hospital, never in its store.
        source = build_site(
            work / "canary" / "patients",
            AUDITED_SITE,
            replace(scale.site, test_per_class=m // 6),
            seed=SEED + 300,
            say=say,
            train=False,
        )
        say(f"canary audit: training {len(todo)} generators of {AUDITED_SITE} with {m} candidate canaries")
        args = [
            (
                str(homes[AUDITED_SITE]),
                str(source),
                str(_canary_home(work, r)),
                r.backend,
                r.epsilon,
                scale.name,
                m,
                str(foundation),
            )
            for r in todo
        ]
        jobs = scale.jobs if len(todo) > 1 else 1
        with ProcessPoolExecutor(jobs, mp_context=get_context("forkserver")) as pool:
            for line in pool.map(_canary_run, *zip(*args, strict=True)):
                say(line)
    return {
        f"eps{eps_name(r.epsilon)}": json.loads((_canary_home(work, r) / "audit.json").read_text())
        for r in runs
    }


def _canary_run(
    base: str,
    source: str,
    target: str,
    backend: str,
    epsilon: float,
    scale_name: str,
    m: int,
    foundation: str,
) -> str:
    scale = SCALES[scale_name]
    if scale.jobs > 1:
        torch.set_num_threads(1)
    from site_agent.generator.training_run import train_generator
    from site_agent.ingest.store import CaseRecord, CaseStore

    home = copy_site(Path(base), Path(target))
    settings = generator_settings(site_settings(home, scale.site), backend, foundation)
    patients = store_items(site_settings(Path(source), scale.site), "holdout")
    labels = np.array([DEFAULT_CLASSES.index(p.label) for p in patients], dtype=np.int64)
    canaries = make_canaries(
        np.stack([p.image for p in patients]), np.stack([p.mask for p in patients]), labels, seed=SEED + 301
    )
    classes = DEFAULT_CLASSES
    with CaseStore(settings.paths.store) as store:
        if not any(c.case_id.startswith("canary-") for c in store.all_latest()):
            for n in np.flatnonzero(canaries.included):
                store.add(
                    CaseRecord(
                        case_id=f"canary-{n:03d}",
                        version=0,
                        fingerprint=f"canary-{n:03d}",
                        label=classes[int(canaries.labels[n])],
                        split="train",
                        file="",
                        has_mask=True,
                        shape=tuple(canaries.images[n].shape),  # type: ignore[arg-type]
                        spacing_mm=scale.site.spacing_mm,
                        source_spacing_mm=(scale.site.spacing_mm,) * 3,
                        source_slices=scale.site.box[2],
                        hu_min=-1000.0,
                        hu_max=1000.0,
                        created_at="",
                        patient=f"canary-{n:03d}",
                    ),
                    canaries.images[n],
                    canaries.masks[n],
                )
    started = time.perf_counter()
    run = train_generator(settings, epsilon=epsilon, round_id=f"canary-{backend}-eps{eps_name(epsilon)}")
    seconds = time.perf_counter() - started
    from site_agent.generator.registry import load_backend

    generator = load_backend(run.generator.backend, settings.paths.models / run.run_id, choose_device("auto"))
    samples = generator.sample(np.repeat(np.arange(len(classes), dtype=np.int64), 50), seed=SEED + 302)
    scores = canary_scores(canaries, samples.images)
    k = m // 4
    r, v = audit_guesses(scores, canaries.included, k)
    bound = epsilon_lower_bound(r, v, run.privacy.delta, m)
    in_scores, out_scores = scores[canaries.included], scores[~canaries.included]
    result = {
        "site": AUDITED_SITE,
        "backend": backend,
        "epsilon_asked": eps_name(epsilon),
        "epsilon_accounted": None if math.isinf(run.privacy.epsilon) else round(run.privacy.epsilon, 4),
        "delta": run.privacy.delta,
        "canaries": m,
        "included": int(canaries.included.sum()),
        "training_patients": run.patients,
        "steps": run.privacy.steps,
        "guesses": r,
        "correct": v,
        "epsilon_lower_bound_95": round(bound, 4),
        "largest_possible_bound": round(epsilon_lower_bound(r, r, run.privacy.delta, m), 4),
        "canary_attack": attack_metrics(in_scores, out_scores),
        "samples_scored": len(samples.images),
        "train_s": round(seconds, 1),
    }
    (Path(target) / "audit.json").write_text(json.dumps(result, indent=2) + "\n")
    return (
        f"canary audit epsilon {eps_name(epsilon)}: {v}/{r} guesses right, lower bound {bound:.2f} "
        f"(accounted {result['epsilon_accounted']}), pid {os.getpid()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="ci")
    parser.add_argument("--work", type=Path, help="the folder bench.utility used; built here if empty")
    parser.add_argument("--canaries", type=int, default=48)
    parser.add_argument("--samples", type=int, default=50, help="generator samples per class to attack with")
    parser.add_argument(
        "--foundation", type=Path, help="a foundation folder at the scale's box: lesionstats, not dpgan3d"
    )
    args = parser.parse_args()
    scale = SCALES[args.scale]
    foundation = None if args.foundation is None else args.foundation.resolve()
    runs = GAN_RUNS if foundation is None else FOUNDATION_RUNS
    with tempfile.TemporaryDirectory(prefix="fedsynth-privacy-") as scratch:
        work = args.work or Path(scratch)
        started = time.perf_counter()
        homes = build_sites(work, scale, say)
        releases = train_releases(work, homes, scale, say, runs, foundation)
        distance = distance_attacks(releases, runs, homes, scale, args.samples)
        shadow = shadow_attacks(work, homes, releases, runs, scale, foundation)
        canary = canary_audits(work, homes, runs, scale, args.canaries, foundation)
        seconds = round(time.perf_counter() - started)
    path = write_result(
        "privacy" if foundation is None else "privacy-lesionstats",
        {
            "scale": scale.name,
            "backend": runs[0].backend,
            "accounted": {f"{r.profile}-eps{eps_name(r.epsilon_asked)}": r.public() for r in releases},
            "distance_attack_on_generators": distance,
            "shadow_attack_on_diagnostic_models": shadow,
            "canary_audit": canary,
            "seconds": seconds,
        },
    )
    print(f"{seconds} s; wrote {path}")


if __name__ == "__main__":
    main()
