"""Does synthetic-only training come close to real training, and does it generalise better?

    python -m bench.utility [--scale ci|full] [--work DIR] [--foundation DIR|none] [--seeds 3]

On phantom hospitals of the four training profiles plus the external profile (see
bench/synthetic_runs.py), trains the diagnostic model (the default class segmenter with its case head) on:

    real-pooled              all training hospitals' real cases together (what federation forbids)
    real-<site>              one hospital's real cases alone
    <backend>-eps<E>         the pooled synthetic sets the sites' DP generators released at epsilon E
                             per site, pooled by the coordinator's code. With a foundation (a
                             `coordinator foundation train` folder at the scale's box; by default
                             the shipped one where it fits): lesionstats at
                             1, 4, 8 and without DP (inf); ldm3d at 8 with --with-ldm3d, dpgan3d at
                             8 with --with-gan. Without it: dpgan3d at 1, 4, 8 and inf.
    foundation-only          the control, no private data: the foundation's anatomy bank with a generic
                             textbook mass in every box not labelled normal (or, without a bank, its
                             own draws), as many per class as the pooled sets hold
    real-<site>-plus-synthetic  one hospital's real cases plus the epsilon-8 pooled set (without
                             --foundation only: with it, the hour goes to the rows above)

and evaluates every model on the same real held-out sets: each training hospital's held-out
patients, all of them together (internal) and the external hospital. Reports macro AUC with
bootstrap 95% intervals, per-class AUC, Dice, TSTR/TRTR ratios, and the two headline comparisons
as paired bootstrap differences on the same cases. Writes bench/results/utility.json,
bench/results/utility.md and bench/results/utility-auc-vs-epsilon.png.

`--scale ci` is the CPU configuration (the 48x48x64 box at 4 mm, 72 training patients per hospital;
bench.yardstick trains its real rows); `--scale full` the GPU one (the 96x96x128 box at 2 mm, 240
per hospital). The headline rows (pooled real, the best single hospital by its external macro AUC,
and the headline synthetic set: lesionstats at epsilon 8 with --foundation) are trained with
`--seeds` seeds (default 3) and reported as mean and spread across seeds beside seed 0's bootstrap
interval, which covers the test cases but not the spread between training runs; every other row
and every paired comparison is seed 0's.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, write_result
from bench.model_runs import ModelJob, across_seeds, score, train_models
from bench.phantom_sites import site_settings, store_items, write_dataset
from bench.synthetic_runs import (
    EPSILONS,
    EXTERNAL,
    GAN_RUNS,
    SCALES,
    GeneratorRun,
    Release,
    Scale,
    build_sites,
    eps_name,
    train_releases,
)
from shared.crop_box import box_text
from shared.devices import choose_device
from shared.diagnosis.bundle import load_model
from shared.diagnosis.dataset import load_dataset
from shared.diagnosis.metrics import bootstrap, macro_auc
from shared.phantom.profiles import TRAINING_PROFILES
from shared.synthetic_set import SetItem

HEADLINE_EPSILON = 8.0
HEADLINE_BACKEND = "lesionstats"  # the default backend, where a foundation is given
FOUNDATION_RUNS = tuple(GeneratorRun("lesionstats", e) for e in EPSILONS)
# ldm3d (about 7 minutes per hospital here) and dpgan3d (about 9) at epsilon 8 would push
# --scale ci past its hour with the rows above, so each joins them only when asked.
EXTRA_RUNS = {
    "ldm3d": GeneratorRun("ldm3d", HEADLINE_EPSILON),
    "gan": GeneratorRun("dpgan3d", HEADLINE_EPSILON),
}
CONTROL = "foundation-only"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def prepare_data(
    work: Path,
    homes: dict[str, Path],
    releases: list[Release],
    runs: tuple[GeneratorRun, ...],
    headline: GeneratorRun,
    scale: Scale,
    foundation: Path | None,
) -> dict[str, Any]:
    """Training sets by configuration and test sets by name, as dataset folders."""
    say("writing the training and test sets")
    data = work / "data"
    train: dict[str, list[SetItem]] = {}
    tests: dict[str, Path] = {}
    internal: list[SetItem] = []
    for profile in TRAINING_PROFILES:
        settings = site_settings(homes[profile], scale.site)
        train[profile] = store_items(settings, "train")
        held_out = store_items(settings, "holdout")
        internal += held_out
    tests["internal"] = write_dataset(data / "test-internal", internal, "test-internal", like=scale.site)
    external = store_items(site_settings(homes[EXTERNAL], scale.site), "holdout")
    tests[EXTERNAL] = write_dataset(data / "test-external", external, "test-external", like=scale.site)

    configs: dict[str, Path] = {}
    pooled = [item for profile in TRAINING_PROFILES for item in train[profile]]
    configs["real-pooled"] = write_dataset(data / "real-pooled", pooled, "real-pooled", like=scale.site)
    for profile in TRAINING_PROFILES:
        configs[f"real-{profile}"] = write_dataset(
            data / f"real-{profile}", train[profile], f"real-{profile}", like=scale.site
        )
    if foundation is not None:
        per_class = scale.synthetic_per_class * len(TRAINING_PROFILES)
        control = data / CONTROL
        items = [] if control.exists() else foundation_only(foundation, per_class)  # drawn once
        configs[CONTROL] = write_dataset(control, items, CONTROL, like=scale.site)
    for run in runs:
        sets = [r.released for r in releases if _of(r, run) and r.released is not None]
        if sets:
            configs[run.name] = pool_synthetic(work, sets, run, scale)
    if headline.name in configs and foundation is None:  # the GAN-only run keeps its old rows
        synthetic = _items(configs[headline.name])
        for profile in TRAINING_PROFILES:
            name = f"real-{profile}-plus-synthetic"
            configs[name] = write_dataset(data / name, train[profile] + synthetic, name, like=scale.site)
    return {"configs": configs, "tests": tests}


def class_montage(configs: dict[str, Path], headline: GeneratorRun, path: Path) -> None:
    """Per class, four real training boxes beside four of the headline pooled synthetic set, each
    four drawn across the hospitals."""
    from shared.classes import DEFAULT_CLASSES, DISPLAY_NAMES
    from shared.foundation.montage import save_drawn_montage

    if headline.name not in configs:
        return
    real, synthetic = load_dataset(configs["real-pooled"]), load_dataset(configs[headline.name])
    images, masks, names = [], [], []
    for k, name in enumerate(DEFAULT_CLASSES):
        for data in (real, synthetic):
            # Spread over the set, which lists its hospitals one after another: one of each, not four of one.
            members = np.flatnonzero(data.labels == k)
            picked = members[np.linspace(0, len(members) - 1, 4).round().astype(int)]
            images += [data.images[i] for i in picked]
            masks += [data.masks[i] for i in picked]
        names.append(f"{DISPLAY_NAMES[name]}: 4 real (left), 4 {headline.name} (right)")
    title = f"real training patients and pooled synthetic volumes ({headline.name}) per class"
    save_drawn_montage(np.stack(images), np.stack(masks), title, path, row_names=names, per_row=8)


def _of(release: Release, run: GeneratorRun) -> bool:
    return release.backend == run.backend and release.epsilon_asked == run.epsilon


def foundation_only(folder: Path, per_class: int) -> list[SetItem]:
    """The control: what lesionstats makes with no private data at all. With an anatomy bank,
    its boxes with the textbook's generic mass (PUBLIC_LESION) painted into every box not labelled
    normal; without one, the foundation's draws under its public row. Either way the labels go to
    the classes in turn, so nothing but normal-or-not can be told from an image."""
    from shared.classes import DEFAULT_CLASSES, NORMAL
    from shared.foundation.anatomy import draw_anatomy
    from shared.foundation.artefact import load_foundation
    from shared.foundation.sampling import draw
    from site_agent.generator.lesionstats.features import PUBLIC_LESION
    from site_agent.generator.lesionstats.painting import paint_lesion

    foundation = load_foundation(folder)
    total = per_class * len(DEFAULT_CLASSES)
    if foundation.anatomy is not None:
        rng = np.random.default_rng(7)
        images = draw_anatomy(foundation.anatomy, total, rng)
        masks = np.zeros(images.shape, dtype=np.uint8)
        for n in range(total):
            if DEFAULT_CLASSES[n % len(DEFAULT_CLASSES)] != NORMAL:
                images[n], masks[n] = paint_lesion(
                    images[n], PUBLIC_LESION, spacing_mm=foundation.spec.spacing_mm, rng=rng
                )
    else:
        drawn = draw(
            foundation.spec,
            foundation.autoencoder,
            foundation.denoiser,
            foundation.scale_factor,
            np.full(total, foundation.spec.public_class, dtype=np.int64),
            seed=7,
        )
        images, masks = drawn.images, drawn.masks
    return [
        SetItem(f"control-{n:05d}", images[n], masks[n], DEFAULT_CLASSES[n % len(DEFAULT_CLASSES)], "public")
        for n in range(total)
    ]


def pool_synthetic(work: Path, sets: list[Path], run: GeneratorRun, scale: Scale) -> Path:
    """The pooled set of these site sets, built by the coordinator's own pooling code."""
    from coordinator.config import CoordinatorPaths, CoordinatorSettings
    from coordinator.federation.pooling import build_pooled, pooled_root
    from shared.schemas import RoundRequest

    root = work / "coordinator" / run.name
    epsilon = run.epsilon
    settings = CoordinatorSettings(paths=CoordinatorPaths(data=root / "data"))
    existing = pooled_root(settings) / "v1"
    if existing.exists():
        return existing
    sources = []
    for folder in sets:
        target = root / "data" / "rounds" / "bench" / "sites" / folder.parents[1].name
        if not target.exists():
            shutil.copytree(folder, target)
        sources.append(target)
    spacing = scale.site.spacing_mm
    request = RoundRequest(
        round_id=f"bench-{run.name}",
        epsilon=epsilon if math.isfinite(epsilon) else 1e9,
        per_class=scale.synthetic_per_class,
        volume_shape=scale.site.box,
        spacing_mm=(spacing, spacing, spacing),
    )
    return build_pooled(settings, sources, request).folder


def _items(folder: Path) -> list[SetItem]:
    data = load_dataset(folder)
    return [
        SetItem(
            f"syn-{n:05d}", data.images[n], data.masks[n], data.card.classes[int(data.labels[n])], "pooled"
        )
        for n in range(len(data))
    ]


def _model_folder(work: Path, name: str, seed: int) -> Path:
    return work / "models" / (name if seed == 0 else f"{name}-seed{seed}")


def train_all(
    work: Path, configs: dict[str, Path], scale: Scale, again: list[str], seeds: int
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Every configuration's model at seed 0 with the default task (the class segmenter and its
    case head), and the `again` configurations at seeds 1 to `seeds` - 1 as well. Returns the
    seed-0 models by name, and the later seeds' by name."""
    jobs = [(name, 0) for name in configs] + [(name, s) for name in again for s in range(1, seeds)]
    # Longest first, so that two at a time finish together: the small single-hospital sets last.
    jobs.sort(key=lambda job: -_case_count(configs[job[0]]))
    trained = train_models(
        [ModelJob(configs[n], _model_folder(work, n, s), "segment", s) for n, s in jobs], scale, say
    )
    first: dict[str, dict[str, Any]] = {}
    later: dict[str, list[dict[str, Any]]] = {}
    for (name, seed), model in zip(jobs, trained, strict=True):
        if seed == 0:
            first[name] = model
        else:
            later.setdefault(name, []).append(model)
    return {name: first[name] for name in configs}, later


def _case_count(folder: Path) -> int:
    """The cases of a dataset folder, from its labels.csv (one line each after the header)."""
    return sum(1 for line in (folder / "labels.csv").read_text().splitlines()[1:] if line)


def best_single_site(results: dict[str, dict[str, Any]]) -> str:
    """The single hospital whose real model scores best on the external hospital at seed 0: the
    headline compares against it there, so it is chosen where it is strongest."""
    singles = [f"real-{p}" for p in TRAINING_PROFILES]
    return max(singles, key=lambda n: results[n][EXTERNAL]["macro_auc"]["value"] or 0.0)


def seed_rows(
    names: list[str],
    results: dict[str, dict[str, Any]],
    later: dict[str, list[dict[str, Any]]],
    tests: dict[str, Path],
) -> dict[str, Any]:
    """Each headline row's macro AUC at every seed (seed 0 from the full evaluation), and their mean
    and spread: the spread between training runs, which the bootstrap intervals do not cover."""
    rows: dict[str, Any] = {}
    for name in names:
        runs = [{t: {"macro_auc": results[name][t]["macro_auc"]} for t in ("internal", EXTERNAL)}]
        for model in later.get(name, []):
            r = score(model, tests)
            say(f"{name} seed {len(runs)}: internal {_auc(r['internal'])}, external {_auc(r[EXTERNAL])}")
            runs.append({t: {"macro_auc": r[t]["macro_auc"]} for t in ("internal", EXTERNAL)})
        rows[name] = {
            "per_seed": {t: [r[t]["macro_auc"]["value"] for r in runs] for t in ("internal", EXTERNAL)},
            "across_seeds": across_seeds(runs),
        }
    return rows


def evaluate_all(trained: dict[str, dict[str, Any]], tests: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """The full evaluation report (coordinator.diagnosis.evaluation) on the internal and external
    sets; each hospital's macro AUC from the internal set's cases of that hospital."""
    from coordinator.diagnosis.evaluation import evaluate_model

    internal = load_dataset(tests["internal"])
    sites = np.asarray(internal.sites)
    results: dict[str, dict[str, Any]] = {}
    for name, model in trained.items():
        results[name] = {}
        for test in ("internal", EXTERNAL):
            report = evaluate_model(model["folder"], tests[test])
            # Dice only where the model has a segmenter; "normal" has no lesion to score.
            per_class_dice = {k: v.get("dice", {}).get("value") for k, v in report["per_class"].items()}
            dice = [d for d in per_class_dice.values() if d is not None]
            results[name][test] = {
                "cases": report["cases"],
                "macro_auc": report["macro_auc"],
                "balanced_accuracy": report["balanced_accuracy"],
                "per_class_auc": {k: v["auc"]["value"] for k, v in report["per_class"].items()},
                "per_class_dice": per_class_dice,
                "mean_lesion_dice": statistics.mean(dice) if dice else None,
            }
        device = choose_device("auto")
        probabilities = load_model(model["folder"], device=device).probabilities(
            internal.images, device=device
        )
        for profile in TRAINING_PROFILES:
            idx = np.flatnonzero(sites == profile)
            results[name][profile] = {
                "cases": len(idx),
                "macro_auc": _macro_auc_estimate(probabilities[idx], internal.labels[idx]),
            }
        row = results[name]
        say(f"evaluated {name}: internal {_auc(row['internal'])}, external {_auc(row[EXTERNAL])}")
    return results


def fidelity(
    configs: dict[str, Path], trained: dict[str, dict[str, Any]], tests: dict[str, Path]
) -> dict[str, Any]:
    """How close each training set's volumes sit to the real held-out ones, in two views no
    generator trained on:

    - the Frechet distance in the feature space of the pooled real model's segmenter (the case
      head's inputs: the predicted lesion's size, place, shape and HU), against the internal
      held-out patients; the real training patients give the floor;
    - the HU inside the lesion masks per class (mean and spread of each volume's lesion mean);
    - the HU of each tissue band over whole boxes (share of voxels and median HU; the boxes hold
      no tissue labels, so tissues are the bands a radiologist's window separates)."""
    from scipy.linalg import sqrtm

    from shared.classes import DEFAULT_CLASSES

    device = choose_device("auto")
    reference = load_model(trained["real-pooled"]["folder"], device=device)
    held_out = load_dataset(tests["internal"])
    ref = reference.lesion_features(held_out.images, device=device).astype(np.float64)

    def frechet(features: np.ndarray) -> float:
        mu_a, mu_b = features.mean(0), ref.mean(0)
        cov_a, cov_b = np.cov(features, rowvar=False), np.cov(ref, rowvar=False)
        root = sqrtm(cov_a @ cov_b).real
        return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * root))

    def lesion_hu(data: Any) -> dict[str, Any]:
        out = {}
        for k, name in enumerate(DEFAULT_CLASSES[1:], start=1):
            means = [
                float(data.images[i][data.masks[i] > 0].mean()) * 200.0 + 40.0
                for i in np.flatnonzero(data.labels == k)
                if data.masks[i].any()
            ]
            out[name] = {
                "volumes_with_lesion": len(means),
                "mean_hu": round(statistics.mean(means), 1) if means else None,
                "sd_hu": round(statistics.stdev(means), 1) if len(means) > 1 else None,
            }
        return out

    result: dict[str, Any] = {
        "reference": "internal held-out patients",
        "held_out_lesion_hu": lesion_hu(held_out),
        "held_out_tissue_hu": tissue_hu(held_out.images),
    }
    for name, folder in configs.items():
        if name.startswith("real-") and name != "real-pooled":
            continue
        data = load_dataset(folder)
        features = reference.lesion_features(data.images, device=device).astype(np.float64)
        result[name] = {
            "frechet_distance": round(frechet(features), 3),
            "lesion_hu": lesion_hu(data),
            "tissue_hu": tissue_hu(data.images),
        }
        say(f"fidelity of {name}: Frechet distance {result[name]['frechet_distance']}")
    return result


# HU bands of the box's window (-160, 240): what falls below it is lung and air, above it bone.
TISSUE_BANDS_HU = {
    "lung and air": (-1e9, -150.0),
    "fat": (-150.0, -30.0),
    "soft tissue and fluid": (-30.0, 100.0),
    "enhanced blood": (100.0, 230.0),
    "bone and calcium": (230.0, 1e9),
}


def tissue_hu(images: np.ndarray) -> dict[str, dict[str, float | None]]:
    """Per tissue band: its share of the boxes' voxels and the median HU inside it."""
    hu = np.asarray(images[:, ::2, ::2, ::2], dtype=np.float32).ravel() * 200.0 + 40.0
    out: dict[str, dict[str, float | None]] = {}
    for name, (low, high) in TISSUE_BANDS_HU.items():
        inside = hu[(hu >= low) & (hu < high)]
        out[name] = {
            "share": round(float(len(inside) / len(hu)), 4),
            "median_hu": round(float(np.median(inside)), 1) if len(inside) else None,
        }
    return out


def _macro_auc_estimate(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    return bootstrap(lambda i: macro_auc(probabilities[i], labels[i]), len(labels)).as_dict()


def _auc(row: dict[str, Any]) -> str:
    m = row["macro_auc"]
    if m["value"] is None:
        return "n/a"
    if m["ci95_low"] is None:
        return f"{m['value']:.3f}"
    return f"{m['value']:.3f} [{m['ci95_low']:.3f}, {m['ci95_high']:.3f}]"


def paired_difference(model_a: Path, model_b: Path, test: Path) -> dict[str, Any]:
    """Macro AUC of model a minus model b on the same cases, with a paired bootstrap interval."""
    device = choose_device("auto")
    data = load_dataset(test)
    pa = load_model(model_a, device=device).probabilities(data.images, device=device)
    pb = load_model(model_b, device=device).probabilities(data.images, device=device)

    def diff(i: np.ndarray) -> float | None:
        a, b = macro_auc(pa[i], data.labels[i]), macro_auc(pb[i], data.labels[i])
        return None if a is None or b is None else a - b

    interval = bootstrap(diff, len(data))
    low, high = interval.low, interval.high
    estimate: dict[str, Any] = interval.as_dict()
    estimate["significant"] = low is not None and high is not None and (low > 0 or high < 0)
    return estimate


def headlines(
    trained: dict[str, dict[str, Any]],
    results: dict[str, dict[str, Any]],
    tests: dict[str, Path],
    headline: GeneratorRun,
    best: str,
) -> dict[str, Any]:
    """The study's claims, in numbers, whichever way they fall: every synthetic configuration's
    TSTR/TRTR, and for the headline one (the default backend at epsilon 8) the paired differences
    against pooled real, the best single hospital and the foundation-only control."""
    real = results["real-pooled"]
    synthetic_rows = [n for n in results if not n.startswith("real-")]
    ratios = {
        name: {
            test: _ratio(results[name][test]["macro_auc"]["value"], real[test]["macro_auc"]["value"])
            for test in ("internal", EXTERNAL)
        }
        for name in synthetic_rows
    }
    out: dict[str, Any] = {"headline": headline.name, "tstr_over_trtr": ratios}
    synthetic = headline.name
    if synthetic not in results:
        out["note"] = f"no pooled {synthetic} set: every site's export was refused"
        return out
    out["synthetic_vs_real_pooled"] = {
        test: paired_difference(trained[synthetic]["folder"], trained["real-pooled"]["folder"], tests[test])
        for test in ("internal", EXTERNAL)
    }
    out["external_synthetic_vs_best_single_site"] = {
        "synthetic": synthetic,
        "best_single_site": best,
        "chosen_by": "its own external macro AUC (favours the single-site side)",
        "difference": paired_difference(
            trained[synthetic]["folder"], trained[best]["folder"], tests[EXTERNAL]
        ),
    }
    if CONTROL in trained:
        out["synthetic_vs_control"] = {
            test: paired_difference(trained[synthetic]["folder"], trained[CONTROL]["folder"], tests[test])
            for test in ("internal", EXTERNAL)
        }
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 4)


def verdicts(head: dict[str, Any]) -> list[str]:
    if "synthetic_vs_real_pooled" not in head:
        return [head.get("note", "no synthetic model")]
    lines = []
    name = head["headline"]
    for test, d in head["synthetic_vs_real_pooled"].items():
        ratio = head["tstr_over_trtr"][name][test]
        lines.append(
            f"Synthetic-only ({name}) versus pooled real, {test}: TSTR/TRTR {ratio}, "
            f"difference {_signed(d)}: "
            + ("a significant difference." if d["significant"] else "no significant difference at this size.")
        )
    for test, d in head.get("synthetic_vs_control", {}).items():
        better = d["value"] is not None and d["value"] > 0
        lines.append(
            f"{name} versus the foundation-only control, {test}: difference {_signed(d)}: "
            + ("above the control" if better else "not above the control")
            + (" (significant)." if d["significant"] else " (not significant at this size).")
        )
    ext = head["external_synthetic_vs_best_single_site"]
    d = ext["difference"]
    better = d["value"] is not None and d["value"] > 0
    lines.append(
        f"External hospital, pooled {name} versus the best single hospital's real model "
        f"({ext['best_single_site']}): difference {_signed(d)}: the synthetic model is "
        + ("better" if better else "not better")
        + (
            " (a significant difference)."
            if d["significant"]
            else " (not a significant difference at this size)."
        )
    )
    return lines


def _signed(d: dict[str, Any]) -> str:
    if d["value"] is None:
        return "n/a"
    if d["ci95_low"] is None:
        return f"{d['value']:+.3f}"
    return f"{d['value']:+.3f} [{d['ci95_low']:+.3f}, {d['ci95_high']:+.3f}]"


def markdown(payload: dict[str, Any]) -> str:
    tests = ["internal", *TRAINING_PROFILES, EXTERNAL]
    lines = [
        f"# Utility: synthetic versus real (`--scale {payload['scale']}`)",
        "",
        "Macro AUC with bootstrap 95% intervals on real held-out phantom patients. "
        f"Training patients per hospital: {payload['site_scale']['train_per_class'] * 6}; "
        f"box {box_text(tuple(payload['site_scale']['box']))} at {payload['site_scale']['spacing_mm']:g} mm.",
        "",
        *[f"- {line}" for line in payload["verdicts"]],
        "",
        "| training data | cases | " + " | ".join(tests) + " | lesion Dice (internal) |",
        "| --- | ---: | " + " | ".join("---" for _ in tests) + " | ---: |",
    ]
    for name, row in payload["results"].items():
        dice = row["internal"]["mean_lesion_dice"]
        lines.append(
            f"| {name} | {payload['models'][name]['cases']} | "
            + " | ".join(_auc(row[t]) for t in tests)
            + f" | {'n/a' if dice is None else f'{dice:.3f}'} |"
        )
    lines += ["", *seed_table(payload)]
    lines += [
        "",
        "| backend | site | epsilon asked | epsilon spent (accountant) | steps | seconds | audit |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in payload["releases"]:
        spent = "inf" if r["epsilon_spent"] is None else f"{r['epsilon_spent']:.3f}"
        audit = "passed" if r["audit_passed"] else "refused"
        lines.append(
            f"| {r['backend']} | {r['site']} | {r['epsilon_asked']} | {spent} | {r['steps']} | "
            f"{r['train_s']:.0f} | {audit} |"
        )
    fid = payload["fidelity"]
    lines += [
        "",
        "Frechet distance to the internal held-out patients in the pooled real model's lesion features "
        "(real-pooled: the floor), and the mean HU inside the lesion masks per class "
        f"(held-out: {_hu_row(fid['held_out_lesion_hu'])}):",
        "",
        "| training data | Frechet distance | lesion HU by class (mean, volumes with a lesion) |",
        "| --- | ---: | --- |",
    ]
    for name, row in fid.items():
        if isinstance(row, dict) and "frechet_distance" in row:
            lines.append(f"| {name} | {row['frechet_distance']:.2f} | {_hu_row(row['lesion_hu'])} |")
    lines += ["", "![macro AUC against epsilon](utility-auc-vs-epsilon.png)", ""]
    lines += ["![real and synthetic per class](utility-montage.png)", ""]
    return "\n".join(lines)


def seed_table(payload: dict[str, Any]) -> list[str]:
    """The headline rows across training seeds: mean (sd) of macro AUC, and each seed's value."""
    seeds = payload.get("seeds")
    if not seeds:
        return []
    lines = [
        "The headline rows across training seeds (macro AUC, mean (sd) and each seed's; seed 0's "
        "bootstrap interval is in the table above):",
        "",
        "| training data | seeds | internal mean (sd) | external mean (sd) | internal by seed "
        "| external by seed |",
        "| --- | ---: | --- | --- | --- | --- |",
    ]
    for name, row in seeds.items():
        spread = row["across_seeds"]
        cells = []
        for test in ("internal", EXTERNAL):
            m = spread[test]
            cells.append(
                "n/a"
                if m["mean"] is None
                else f"{m['mean']:.3f} ({'-' if m['sd'] is None else format(m['sd'], '.3f')})"
            )
        by_seed = [
            ", ".join("n/a" if v is None else f"{v:.3f}" for v in row["per_seed"][t])
            for t in ("internal", EXTERNAL)
        ]
        lines.append(f"| {name} | {spread['seeds']} | {' | '.join(cells)} | {' | '.join(by_seed)} |")
    return lines


def _hu_row(by_class: dict[str, Any]) -> str:
    cells = []
    for name, v in by_class.items():
        hu = "n/a" if v["mean_hu"] is None else f"{v['mean_hu']:.0f}"
        cells.append(f"{name} {hu} ({v['volumes_with_lesion']})")
    return ", ".join(cells)


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = payload["results"]
    backend = payload["headline_backend"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    xs = list(range(len(EPSILONS)))
    for test, colour, shift in (("internal", "tab:blue", -0.06), (EXTERNAL, "tab:orange", 0.06)):
        pts = [
            (x + shift, results[f"{backend}-eps{eps_name(e)}"][test]["macro_auc"])
            for x, e in zip(xs, EPSILONS, strict=True)
            if f"{backend}-eps{eps_name(e)}" in results
        ]
        ax.errorbar(*_bars(pts), marker="o", capsize=3, color=colour, label=f"{backend}, {test}")
        others = [
            n
            for n in results
            if n.endswith(f"-eps{eps_name(HEADLINE_EPSILON)}") and not n.startswith(backend)
        ]
        for marker, name in zip("sD^v", others, strict=False):
            at = xs[EPSILONS.index(HEADLINE_EPSILON)] + 2.5 * shift
            ax.errorbar(
                *_bars([(at, results[name][test]["macro_auc"])]),
                marker=marker,
                capsize=3,
                color=colour,
                ls="none",
                mfc="white",
                label=f"{name}, {test}",
            )
        ax.axhline(
            results["real-pooled"][test]["macro_auc"]["value"],
            color=colour,
            ls="--",
            label=f"pooled real, {test}",
        )
        if CONTROL in results:
            ax.axhline(
                results[CONTROL][test]["macro_auc"]["value"], color=colour, ls=":", label=f"{CONTROL}, {test}"
            )
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xticks(xs, [eps_name(e) for e in EPSILONS])
    ax.set_xlabel("epsilon per site (inf: no DP)")
    ax.set_ylabel("macro AUC")
    ax.set_title("Diagnostic model trained on synthetic data only")
    ax.legend(fontsize=6, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _bars(pts: list[tuple[float, dict[str, Any]]]) -> tuple[list[float], list[float], list[list[float]]]:
    values = [m["value"] for _, m in pts]
    low = [m["value"] - (m["ci95_low"] or m["value"]) for _, m in pts]
    high = [(m["ci95_high"] or m["value"]) - m["value"] for _, m in pts]
    return [x for x, _ in pts], values, [low, high]


def _foundation_card(folder: Path) -> dict[str, Any]:
    from shared.foundation.artefact import load_foundation
    from shared.foundation.files import foundation_sha256

    card = load_foundation(folder).card
    return {
        "foundation_id": card.foundation_id,
        "sha256": foundation_sha256(folder),
        "training": card.training,
        "anatomy_bank_boxes": sum(source.cases for source in card.anatomy_sources),
    }


def _foundation_folder(asked: str, scale: Scale) -> Path | None:
    from shared.foundation.artefact import load_foundation
    from shared.foundation.shipped import SHIPPED_FOUNDATION

    if asked == "none":
        return None
    if asked != "shipped":
        return Path(asked)
    if load_foundation(SHIPPED_FOUNDATION).spec.box != scale.site.box:
        say(f"the shipped foundation is not at the {scale.name} box: the dpgan3d rows alone")
        return None
    return SHIPPED_FOUNDATION


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="ci")
    parser.add_argument("--work", type=Path, help="keep everything here; a later run reuses what is there")
    parser.add_argument(
        "--foundation",
        default="shipped",
        help="a foundation folder at the scale's box, for lesionstats and the control (default: the "
        "shipped chest-ct-cpu-v2 where the scale's box is its CPU box); none: the dpgan3d rows alone",
    )
    parser.add_argument(
        "--epsilons", default="1,4,8,inf", help="with --foundation: the lesionstats privacy levels"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="training seeds of the headline rows: pooled real, the best single hospital and the "
        "headline synthetic set (every other row: seed 0)",
    )
    parser.add_argument("--with-ldm3d", action="store_true", help="with --foundation: ldm3d at epsilon 8 too")
    parser.add_argument("--with-gan", action="store_true", help="with --foundation: dpgan3d at epsilon 8 too")
    args = parser.parse_args()
    scale = SCALES[args.scale]
    args.foundation = _foundation_folder(args.foundation, scale)
    runs = GAN_RUNS
    if args.foundation:
        asked = {float(e) for e in args.epsilons.split(",")}
        wanted = [name for name, on in (("ldm3d", args.with_ldm3d), ("gan", args.with_gan)) if on]
        runs = (
            *(r for r in FOUNDATION_RUNS if r.epsilon in asked),
            *(EXTRA_RUNS[name] for name in wanted),
        )
    headline = GeneratorRun(HEADLINE_BACKEND if args.foundation else "dpgan3d", HEADLINE_EPSILON)
    with tempfile.TemporaryDirectory(prefix="fedsynth-utility-") as scratch:
        work = args.work or Path(scratch)
        started = time.perf_counter()
        homes = build_sites(work, scale, say)
        built = time.perf_counter()
        releases = train_releases(work, homes, scale, say, runs, args.foundation)
        generated = time.perf_counter()
        data = prepare_data(work, homes, releases, runs, headline, scale, args.foundation)
        class_montage(data["configs"], headline, RESULTS / "utility-montage.png")
        again = [name for name in ("real-pooled", headline.name) if name in data["configs"]]
        trained, later = train_all(work, data["configs"], scale, again, args.seeds)
        results = evaluate_all(trained, data["tests"])
        best = best_single_site(results)
        if args.seeds > 1:
            later.update(train_all(work, {best: data["configs"][best]}, scale, [best], args.seeds)[1])
        modelled = time.perf_counter()
        seeds = seed_rows([*again[:1], best, *again[1:]], results, later, data["tests"])
        head = headlines(trained, results, data["tests"], headline, best)
        closeness = fidelity(data["configs"], trained, data["tests"])
        finished = time.perf_counter()
    payload: dict[str, Any] = {
        "scale": scale.name,
        "site_scale": asdict(scale.site),
        "external_cases": scale.external_per_class * 6,
        "synthetic_per_class_per_site": scale.synthetic_per_class,
        "diagnostic_task": "segment (the class segmenter and its case head) for every model",
        "headline_backend": headline.backend,
        "foundation": None if args.foundation is None else _foundation_card(args.foundation),
        "verdicts": verdicts(head),
        "headlines": head,
        "releases": [r.public() for r in releases],
        "models": {n: {k: v for k, v in m.items() if k != "folder"} for n, m in trained.items()},
        "results": results,
        "seeds": seeds,
        "fidelity": closeness,
        "seconds": {
            "sites": round(built - started),
            "generators": round(generated - built),
            "diagnostic_models": round(modelled - generated),
            "evaluation": round(finished - modelled),
            "total": round(finished - started),
        },
    }
    path = write_result("utility", payload)
    (RESULTS / "utility.md").write_text(markdown(payload))
    plot(payload, RESULTS / "utility-auc-vs-epsilon.png")
    for line in payload["verdicts"]:
        print(line)
    print(f"total {payload['seconds']['total']} s; wrote {path}, utility.md and utility-auc-vs-epsilon.png")


if __name__ == "__main__":
    main()
