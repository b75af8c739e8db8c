"""`python -m bench.report`: every bench/results/*.json, with the machines they ran on, in one page.

Writes bench/RESULTS.md. Nothing is measured here: each section is read from the JSON its
benchmark wrote (the command that writes it is named), so the page is only as current as those
files, and says when and where each was measured. Benchmarks this module does not know are listed
with their top-level figures, so a new one is never left out.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import RESULTS

PAGE = RESULTS.parent / "RESULTS.md"
Json = dict[str, Any]


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ci(m: Json | None) -> str:
    if not m or m.get("value") is None:
        return "n/a"
    if m.get("ci95_low") is None:
        return f"{m['value']:.3f}"
    return f"{m['value']:.3f} [{m['ci95_low']:.3f}, {m['ci95_high']:.3f}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *["| " + " | ".join(r) + " |" for r in rows],
    ]


def utility(d: Json) -> list[str]:
    tests = ["internal", "site_a", "site_b", "site_c", "site_d", "external"]
    rows = [
        [
            name,
            str(d["models"][name]["cases"]),
            *(_ci(row[t]["macro_auc"]) for t in tests),
            _num(row["internal"].get("mean_lesion_dice")),
        ]
        for name, row in d["results"].items()
    ]
    ratios = [
        [name, _num(r.get("internal")), _num(r.get("external"))]
        for name, r in d["headlines"]["tstr_over_trtr"].items()
    ]
    foundation = d.get("foundation")
    lines = [*[f"- {line}" for line in d["verdicts"]], ""]
    if foundation:
        bank = foundation.get("anatomy_bank_boxes", 0)
        anatomy = f", anatomy bank of {bank} public boxes" if bank else ", no anatomy bank"
        lines += [f"Foundation: {foundation['foundation_id']} ({foundation['sha256'][:12]}){anatomy}.", ""]
    lines += [
        "Macro AUC [bootstrap 95% interval] on real held-out phantom patients, and the mean lesion "
        "Dice of each model's segmenter on the internal set:",
        "",
        *_table(["training data", "cases", *tests, "lesion Dice"], rows),
        "",
        *_seed_lines(d),
        "TSTR/TRTR (macro AUC of each synthetic model over the pooled real model):",
        "",
        *_table(["trained on", "internal", "external"], ratios),
        "",
        "![macro AUC against epsilon](results/utility-auc-vs-epsilon.png)",
        "",
    ]
    fid = d.get("fidelity")
    if fid:
        fd_rows = [
            [name, _num(row["frechet_distance"], 2)]
            for name, row in fid.items()
            if isinstance(row, dict) and "frechet_distance" in row
        ]
        lines += [
            "Frechet distance to the internal held-out patients, in the lesion features of the pooled "
            "real model's segmenter (a space no generator trained on; real-pooled is the floor):",
            "",
            *_table(["training data", "Frechet distance"], fd_rows),
            "",
        ]
        tissue_rows = [
            [name, *(f"{_num(t['share'], 3)} / {_num(t['median_hu'], 0)}" for t in tissues.values())]
            for name, tissues in [
                ("real held-out", fid.get("held_out_tissue_hu")),
                *((n, r.get("tissue_hu")) for n, r in fid.items() if isinstance(r, dict)),
            ]
            if tissues
        ]
        if tissue_rows:
            bands = list(fid["held_out_tissue_hu"])
            lines += [
                "HU by tissue band over whole boxes (share of voxels / median HU):",
                "",
                *_table(["volumes", *bands], tissue_rows),
                "",
            ]
    if (RESULTS / "utility-montage.png").exists() and foundation:
        lines += ["![real and synthetic per class](results/utility-montage.png)", ""]
    lines.append(
        f"Full tables (per class, Dice, budgets): [results/utility.md](results/utility.md). "
        f"Run time: {d['seconds']['total']} s."
    )
    return lines


def _seed_lines(d: Json) -> list[str]:
    from bench.utility import seed_table

    table = seed_table(d)
    return [*table, ""] if table else []


def privacy(d: Json) -> list[str]:
    dist = d["distance_attack_on_generators"]
    rows = [
        [
            key.removeprefix("eps") if key.startswith("eps") else "copying generator (check)",
            _num(v["auc"]),
            _num(v["tpr_at_1pct_fpr"]),
            f"{v['members']}/{v['non_members']}",
        ]
        for key, v in dist.items()
    ]
    shadow = d["shadow_attack_on_diagnostic_models"]
    srows = [
        [name, _num(v["auc"]), _num(v["tpr_at_1pct_fpr"]), f"{v['members']}/{v['non_members']}"]
        for name, v in shadow.items()
        if isinstance(v, dict)
    ]
    crows = [
        [
            v["epsilon_asked"],
            _num(v["epsilon_accounted"]),
            _num(v["epsilon_lower_bound_95"], 2),
            f"{v['correct']}/{v['guesses']}",
            _num(v["largest_possible_bound"], 2),
            _num(v["canary_attack"]["auc"]),
        ]
        for v in d["canary_audit"].values()
    ]
    return [
        "Distance attack on each generator (members: its training patients; non-members: held-out):",
        "",
        *_table(["epsilon per site", "AUC", "TPR at 1% FPR", "members/non-members"], rows),
        "",
        f"Shadow-model attack on the diagnostic models ({shadow['shadow_models']} shadow models):",
        "",
        *_table(["target model", "AUC", "TPR at 1% FPR", "members/non-members"], srows),
        "",
        "One-run canary audit (Steinke, Nasr, Jagielski 2023) of one hospital's generator:",
        "",
        *_table(
            [
                "epsilon asked",
                "accounted",
                "empirical lower bound (95%)",
                "right guesses",
                "highest bound these guesses allow",
                "canary AUC",
            ],
            crows,
        ),
        "",
        f"Run time: {d['seconds']} s.",
    ]


def download(d: Json) -> list[str]:
    rows = [
        [
            k.replace("_", " "),
            _num(v["median_mb_s"]["coordinator"], 0),
            _num(v["median_mb_s"]["nginx"], 0),
            _num(v["ratio"], 2),
        ]
        for k, v in d["results"].items()
    ]
    return [
        f"{d['what']}; {d['archive_mb']} MB archive, medians of {d['repeats']}. "
        f"Goal {d['goal_ratio']}x nginx: " + ("met." if d["within_goal"] else "**not met**."),
        "",
        *_table(["downloads", "coordinator MB/s", "nginx MB/s", "ratio"], rows),
    ]


def scale(d: Json) -> list[str]:
    rows = []
    for r in d["runs"]:
        pss = r["peak_pss_mb"]
        if not r["completed"]:
            why = (
                f"stopped, under {r['memory_floor_mb']:.0f} MB free, at: {r['stopped_for_memory_at']}"
                if "stopped_for_memory_at" in r
                else f"round {r['round_state']}: {r['round_message']}"
            )
            rows.append(
                [str(r["sites"]), str(r.get("answers_at_once", 0) or "no limit"), why]
                + [""] * 6
                + [
                    _num(pss.get("sites_resident"), 0) + " + " + _num(pss.get("clientapp"), 0),
                    _num(r["min_available_mb"], 0),
                ]
            )
            continue
        messages = r["messages_per_site"] * r["sites"]
        rows.append(
            [
                str(r["sites"]),
                str(r.get("answers_at_once", 0) or "no limit"),
                _num(r["round_wall_s"], 0),
                _num(r["orchestration_overhead_per_site_s"], 2),
                _num(r["clientapp_start_cpu_s_per_message"], 2),
                _num(r["cpu_s_by_process"].get("clientapp", 0.0) / max(messages, 1), 2),
                str(r.get("messages_asked_again", "")),
                _num(r["superlink_cpu_s_per_site"], 2),
                _num(pss.get("superlink"), 0),
                _num(pss.get("coordinator"), 0),
                _num(pss.get("sites_resident"), 0) + " + " + _num(pss.get("clientapp"), 0),
                _num(r["min_available_mb"], 0),
            ]
        )
    header = [
        "sites",
        "answers at once",
        "round s",
        "overhead per site s",
        "ClientApp start, CPU s per message",
        "ClientApp CPU s per message, in all",
        "messages asked again",
        "SuperLink CPU s per site",
        "SuperLink MB",
        "coordinator MB",
        "sites' SuperNodes and SuperExecs + ClientApps MB",
        "lowest free MB",
    ]
    lines = [
        f"One round per row, every process real, on this machine; memory is peak proportional set size. "
        f"Goal: at most {d['goal_overhead_per_site_s']:g} s of orchestration overhead per site. "
        "A ClientApp's start is Flower and our handlers' module; torch, MONAI and Opacus load inside "
        "the answers that train or score, and count in its CPU in all.",
        "",
        *_table(header, rows),
    ]
    x = d.get("extrapolated")
    if x:
        low, high = x["from_runs"]
        lines += [
            "",
            f"Straight line through the runs of {low} and {high} sites, read at {x['sites']}: "
            f"SuperLink {x['superlink_pss_mb']:.0f} MB ({x['superlink_pss_mb_per_site']:.2f} MB per site), "
            f"coordinator {x['coordinator_pss_mb']:.0f} MB, SuperLink CPU {x['superlink_cpu_s']:.0f} s per "
            f"round ({x['superlink_cpu_s_per_site']:.2f} s per site).",
        ]
    return lines


def fuzz(d: Json) -> list[str]:
    store = d["store"]
    inputs = ", ".join(f"{kind} {count}" for kind, count in d["inputs"].items())
    return [
        f"{d['files_tried']} files ({d['broken_files']} of them broken) in {d['batches']} batches of "
        f"{d['batch_size']} into one store, each "
        f"batch a `site-agent ingest` process ({d['seconds']:.0f} s in all). Goal: 0 crashes, 0 hangs, "
        "bounded memory, the store intact.",
        "",
        *_table(
            ["crashes", "hangs", "peak memory of an ingest process", "store"],
            [
                [
                    str(d["crashes"]),
                    str(d["hangs"]),
                    f"{d['peak_rss_mb']:.0f} MB",
                    f"{'intact' if store['intact'] else '**damaged**'}: {store['cases']} cases, each loads, "
                    "as many as the reports stored",
                ]
            ],
        ),
        "",
        f"Inputs: {inputs}.",
    ]


def faults(d: Json) -> list[str]:
    rows = []
    for f in d["faults"]:
        if "error" in f:
            rows.append([f["fault"], "**undecided**: " + f["error"], "", "", "", "", ""])
            continue
        asked = sum(s["asked_again"] for s in f["sites"].values())
        missing = [f"{site}: {s['reason']}" for site, s in f["sites"].items() if s["synthesis"] != "answered"]
        state = f["state"] if f["state"] == "completed" else f"**{f['state']}**"
        extra = (
            f"; recorded {f['recorded_after_grown_s']:.0f} s after the store was grown"
            if "recorded_after_grown_s" in f
            else ""
        )
        rows.append(
            [
                f["fault"].replace("_", " "),
                f"{state} ({'; '.join(missing) or 'every site answered'}){extra}",
                f"{f['round_wall_s']:.0f} s",
                f"{f['reruns']} / {asked}",
                str(f["spend_double_counted"]),
                str(f["spend_lost"]),
                f"{f['half_published']} of {f['recorded_checked']}",
            ]
        )
    return [
        f"{d['rounds']} rounds on one real federation (two hospitals training a small DP-GAN, the "
        "service as its own process, its object store on a tmpfs), one fault per round. Goal: every "
        "round ends in a definite state; 0 spend double-counted or lost; 0 half-published sets. "
        f"Here: {d['definite']} of {d['rounds']} definite ({d['completed']} completed), "
        f"{d['spend_double_counted']} double-counted, {d['spend_lost']} lost, "
        f"{d['half_published']} half-published.",
        "",
        *_table(
            [
                "fault",
                "how the round ended",
                "round wall",
                "reruns / messages asked again",
                "spend double-counted",
                "spend lost",
                "half-published (of every set and model recorded)",
            ],
            rows,
        ),
    ]


def bundle(d: Json) -> list[str]:
    rows = [
        [name, "ok" if r["exit_code"] == 0 else f"**exit {r['exit_code']}**"]
        for name, r in d["smoke"].items()
    ]
    statuses = d["smoke"].get("site-agent doctor", {}).get("statuses", {})
    doctor = ", ".join(f"{name} {status}" for name, status in statuses.items())
    return [
        f"`scripts/bundle` wrote `{d['archive']}` ({d['archive_mb']} MB, {d['wheels']} wheels) in "
        f"{d['build_s']:.0f} s; `fedsynth-bundle/install` ran in a network namespace with no network "
        f"and without the host's pip settings, in {d['offline_install_s']:.0f} s "
        f"(exit {d['install_exit_code']}). Then, still offline: "
        + ("**passed**." if d["passed"] else "**failed**."),
        "",
        *_table(["smoke command (offline)", "result"], rows),
        "",
        f"The doctor on the fresh site: {doctor}.",
    ]


def containers(d: Json) -> list[str]:
    rows = [[name, str(image["mb"])] for name, image in d["images"].items()]
    steps = [step.removeprefix("smoke: ") for step in d["smoke_steps"]]
    return [
        f"`deploy/containers/build` from nothing but the Debian mirror, PyPI's wheels and this tree "
        f"(the base image removed first): {d['build_s']:.0f} s. `deploy/containers/smoke`: "
        + ("**passed**" if d["smoke_passed"] else "**failed**")
        + f" in {d['smoke_s']:.0f} s. {d['podman']}; flags this host needed: `{d['podman_args'] or 'none'}`.",
        "",
        *_table(["image", "size MB"], rows),
        "",
        "Smoke steps: " + "; ".join(steps) + ".",
    ]


def dashboard(d: Json) -> list[str]:
    rows = [
        [r["role"], f"`{r['page']}`", f"{r['median_load_ms']:.0f}", str(r["accessibility_violations"])]
        for r in d["pages"]
    ]
    return [
        f"Each page loaded {d['pages'][0]['loads']} times in chromium on loopback, signed in as its role, "
        "to the load event (images included); then axe-core ran in the page. Screenshots: "
        "bench/results/dashboard/.",
        "",
        *_table(["role", "page", "median load ms", "axe-core violations"], rows),
    ]


def contract(d: Json) -> list[str]:
    failures = d["contract_failures_by_check"]
    return [
        f"{d['cases']} cases over {d['operations']} operations ({d['per_operation_mode_role']} valid and "
        f"{d['per_operation_mode_role']} invalid per operation and role, operator and researcher) against "
        f"`coordinator serve` as its own process ({d['seconds']:.0f} s). Goal: 0 server errors.",
        "",
        *_table(
            ["server errors", "other contract failures", "tracebacks in the server's log"],
            [[str(d["server_errors"]), str(d["contract_failures"]), str(d["tracebacks_in_server_log"])]],
        ),
        "",
        "Answers: " + ", ".join(f"{code} x {n}" for code, n in d["statuses"].items()) + ". "
        f"Schema-valid cases refused with 422 (rules the schema cannot express): {d['valid_cases_refused']}; "
        f"invalid cases accepted: {sum(d['invalid_cases_accepted'].values())}.",
        *[f"- refused: {example} ({n} x)" for example, n in d["valid_cases_refused_examples"].items()],
        *([""] + [f"- {check}: {n}" for check, n in failures.items()] if failures else []),
    ]


def federation(d: Json) -> list[str]:
    phases = d["runs"][0]["phases_s"]
    return [
        f"{d['what']}: median {d['median_wall_s']} s over {len(d['runs'])} runs "
        f"(goal under {d['goal_s']:.0f} s: {'met' if d['within_goal'] else 'not met'}). "
        "Phases of the first run (s): " + ", ".join(f"{k} {v}" for k, v in phases.items()) + ".",
    ]


def generator(d: Json) -> list[str]:
    rows = [
        [
            c.get("backend", "dpgan3d"),
            _box(c),
            "DP" if c["dp"] else "non-private",
            c.get("mode", "(one release)"),
            _num(c["step_s_median"] if "step_s_median" in c else c["release_s_median"]),
            _num(c["peak_memory_mb"], 0),
            _num(c["sample_volumes_per_s"], 1),
        ]
        for c in d["configurations"]
    ]
    header = ["backend", "box", "training", "per-sample gradients", "step s (median)", "peak MB", "samples/s"]
    ratios = [f"- {name}: {value}x" for name, value in d.get("ratios", {}).items()]
    return _table(header, rows) + (["", *ratios] if ratios else [])


def diagnosis(d: Json) -> list[str]:
    rows = [
        [
            c["network"],
            _box(c),
            c["device"],
            _num(c["train_volumes_per_s"], 1),
            _num(c["inference_volumes_per_s"], 1),
        ]
        for c in d["configurations"]
    ]
    return _table(["network", "box", "device", "train volumes/s", "inference volumes/s"], rows)


def _box(c: Json) -> str:
    """A configuration's box; results written before boxes replaced cubes name a cube edge."""
    box = c.get("box")
    if box is None:
        return f"{c['cube']}^3"
    return box if isinstance(box, str) else "x".join(str(n) for n in box)


def calibration(d: Json) -> list[str]:
    return [
        f"Classifier trained on {d['training_cases']} phantom patients of the training profiles, scored on "
        f"{d['external_cases']} of the external profile: macro AUC {_ci(d['external_macro_auc'])}, "
        f"target band {d['band'][0]}-{d['band'][1]}: {d['verdict']}.",
    ]


def phantom(d: Json) -> list[str]:
    rows = [
        [
            name,
            f"{v['matrix']}, {v['slice_mm']} mm",
            _num(v["total_s_median"]),
            _num(v["studies_per_s"]),
            _num(v["dicom_mb_per_s"], 1),
        ]
        for name, v in d["sizes"].items()
    ]
    return _table(["size", "matrix, slices", "s per study (median)", "studies/s", "DICOM MB/s"], rows)


def ingest(d: Json) -> list[str]:
    rows = [
        [
            name,
            str(v["files"]),
            _num(v["dcm2niix_s"]),
            _num(v["read_validate_hu_one_process_s"]),
            _num(v["read_validate_hu_one_process_over_dcm2niix"], 2),
            _num(v["read_validate_hu_pool_s"]),
            _num(v["read_validate_hu_pool_over_dcm2niix"], 2),
            _num(v["read_validate_hu_as_run_over_dcm2niix"], 2)
            if "read_validate_hu_as_run_over_dcm2niix" in v
            else "",
        ]
        for name, v in d["series"].items()
    ]
    header = [
        "series",
        "files",
        "dcm2niix s",
        "one process s",
        "ratio",
        "pool s",
        "ratio",
        "ratio as a site runs it",
    ]
    goal = d.get("goal_ratio")
    met = [v.get("goal_met") for v in d["series"].values()]
    lines = _table(header, rows)
    if goal is not None:
        lines += [
            "",
            f"Goal: read+validate+HU within {goal}x of dcm2niix, as a site runs it: "
            + ("met." if all(met) else "**not met**."),
        ]
    return lines


def yardstick(d: Json) -> list[str]:
    from bench.yardstick import markdown

    return markdown(d).splitlines()[2:]  # its own page, less its title


def coverage(d: Json) -> list[str]:
    """Lesion coverage by class: median share of each lesion inside the crop, and how many are
    entirely outside it, for each crop measured."""
    sizes = d["lesion_coverage"]
    classes = sorted({k.rsplit("_median_share", 1)[0] for s in sizes.values() for k in s if "median" in k})
    header = ["class", *(f"{name}: median share / fully outside" for name in sizes)]
    rows = [
        [c, *(f"{v[c + '_median_share']:.2f} / {v[c + '_fully_missed']:.0%}" for v in sizes.values())]
        for c in classes
    ]
    return _table(header, rows)


def finetune_probe(d: Json) -> list[str]:
    """Per class: boxes with a lesion mask and the median lesion share, real against drawn."""
    lines = [
        f"- {d['site']}, {d['patients']} training patients, foundation {d['foundation']['id']} "
        f"({d['foundation']['sha256'][:12]}); epsilon spent {d['epsilon_spent']} at delta {d['delta']:g}, "
        f"{d['steps']} steps, noise multiplier {_num(d['noise_multiplier'])}, {d['train_s']:.0f} s.",
        "- Montage (per class: real, fine-tuned, foundation only): "
        "[results/foundation/finetune-montage.png](results/foundation/finetune-montage.png); "
        "the foundation's own draws: [results/foundation/samples.png](results/foundation/samples.png).",
        "",
    ]
    sources = ("real", "fine_tuned", "foundation_only")
    header = ["class", *(f"{s.replace('_', ' ')}: boxes with lesion / median lesion share" for s in sources)]
    rows = [
        [c, *(f"{v[s]['with_lesion']}/{v[s]['boxes']} / {v[s]['lesion_share_median']:.4f}" for s in sources)]
        for c, v in d["per_class"].items()
    ]
    return lines + _table(header, rows)


def generic(d: Json) -> list[str]:
    return [
        f"- {k}: {v}"
        for k, v in d.items()
        if k not in ("benchmark", "environment") and not isinstance(v, (dict, list))
    ]


SECTIONS: dict[str, tuple[str, str, Callable[[Json], list[str]]]] = {
    "utility": ("Utility: synthetic versus real training", "python -m bench.utility", utility),
    "privacy": ("Privacy: attacks and the one-run audit", "python -m bench.privacy", privacy),
    "privacy-lesionstats": (
        "Privacy of lesionstats: the same attacks and audit",
        "python -m bench.privacy --foundation DIR --work DIR",
        privacy,
    ),
    "federation": ("Federation: the demo round", "python -m bench.federation", federation),
    "generator": ("Generator: DP versus non-private training", "python -m bench.generator", generator),
    "diagnosis": ("Diagnostic model speed", "python -m bench.diagnosis", diagnosis),
    "calibration": ("Phantom difficulty", "python -m bench.calibration", calibration),
    "download": ("Downloads: coordinator versus nginx", "python -m bench.download", download),
    "yardstick": ("The real-data yardstick", "python -m bench.yardstick", yardstick),
    "ingest_coverage": ("Lesion coverage of the crop", "python -m bench.ingest --coverage-only", coverage),
    "ingest": ("Ingestion speed", "python -m bench.ingest", ingest),
    "phantom": ("Phantom writing speed", "python -m bench.phantom", phantom),
    "scale": ("Scale: one round with many hospitals on one SuperLink", "python -m bench.scale", scale),
    "fuzz": ("Reliability: broken DICOM in bulk", "python -m bench.fuzz", fuzz),
    "contract": ("Reliability: the API's contract, fuzzed", "python -m bench.contract", contract),
    "faults": ("Reliability: faults in a real federation", "python -m bench.faults", faults),
    "bundle": ("Deployment: the offline install", "python -m bench.bundle", bundle),
    "containers": ("Deployment: container images", "python -m bench.containers", containers),
    "dashboard": (
        "The dashboard: page loads in a real browser",
        "python -m bench.dashboard --url URL --operator-token T --researcher-token T",
        dashboard,
    ),
    "finetune_probe": (
        "The foundation's DP fine-tune at one hospital: does it carry the disease?",
        "python -m bench.finetune_probe --foundation DIR --work DIR",
        finetune_probe,
    ),
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.platform()}"


def render(results: Path = RESULTS) -> str:
    found = {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}
    lines = [
        "# fedsynth benchmark results",
        "",
        "Written by `python -m bench.report` from bench/results/*.json; each section names the command "
        "that measures it. Figures are medians, ratios are measured within one run, and each section "
        "says when and on what it ran: these machines are noisy, so compare within a section.",
        "",
        f"Page written on: {machine()}.",
        "",
    ]
    known = [n for n in SECTIONS if n in found]
    for name in [*known, *sorted(set(found) - set(SECTIONS))]:
        data = found[name]
        title, command, section = SECTIONS.get(name, (name, f"python -m bench.{name}", generic))
        env = data.get("environment", {})
        try:
            body = section(data)
        except (KeyError, TypeError, IndexError) as exc:  # an older file layout: show its figures
            body = [f"(this file's layout is not the current one: {exc!r})", *generic(data)]
        lines += [
            f"## {title}",
            "",
            f"`{command}` · measured {env.get('when', '?')} on {env.get('cpus', '?')} cores, "
            f"{env.get('platform', '?')}, fedsynth {env.get('fedsynth', '?')}",
            "",
            *body,
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    PAGE.write_text(render())
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
