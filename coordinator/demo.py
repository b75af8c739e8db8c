"""`coordinator demo`: a local federation on phantom data, on this machine, with the real CLIs.

The coordinator never imports the site agent: the demo starts `site-agent` as separate processes,
exactly as each hospital would run it on its own machine, and reads back only what a coordinator
would be shown.

The demo runs what exists so far: phantom hospitals with their site agents set up. Each later
stage (ingestion, private generator training, pooling, diagnosis, Flower rounds) joins it as it
lands, and the demo says plainly what it did and what it did not do.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from coordinator.coordinator_toml import write_coordinator_toml
from coordinator.demo_page import write_overview
from shared.classes import DEFAULT_CLASSES
from shared.errors import FedsynthError
from shared.phantom import TRAINING_PROFILES

MARKER = ".fedsynth-demo"
DEMO_MATRIX = "96"  # about 3.7 mm pixels: the demo runs on a laptop CPU in about a minute
DEMO_SLICE_MM = "5"
NOT_YET = (
    "pooling the synthetic sets and training the shared diagnostic model",
    "Flower rounds between the coordinator and the site agents, and evaluation back at each site",
    "the coordinator's web API and researcher downloads",
)


class DemoError(FedsynthError):
    """The demo could not run: its folder is in the way, or a site agent step failed."""


@dataclass(frozen=True)
class DemoOptions:
    out: Path
    cases: int = 12
    seed: int = 0


def prepare_folder(out: Path) -> None:
    """Replace a previous demo's folder; never touch a folder the demo did not create."""
    if out.exists():
        if not out.is_dir():
            raise DemoError(f"{out} exists and is not a folder; pass another --out")
        if (out / MARKER).exists():
            shutil.rmtree(out)
        elif any(out.iterdir()):
            raise DemoError(f"{out} exists, is not empty and was not made by the demo; pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("Made by `coordinator demo`; re-running the demo replaces this folder.\n")


# The CPU demo size of DESIGN.md, given to the site agents the way an operator would: by variable.
# A narrow generator keeps a CPU demo site's DP training to seconds.
DEMO_ENVIRONMENT = {
    "FEDSYNTH_PREPROCESSING__CUBE": "32",
    "FEDSYNTH_PREPROCESSING__SPACING_MM": "4",
    "FEDSYNTH_GENERATOR__WIDTH": "8",
}
DEMO_EPSILON = "8"
DEMO_PER_CLASS = "2"


def site_agent(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the site agent CLI as its own process, as a hospital would."""
    command = [sys.executable, "-m", "site_agent", *args]
    environment = {**os.environ, **DEMO_ENVIRONMENT}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    if result.returncode != 0:
        raise DemoError(
            f"`site-agent {' '.join(args)}` failed:\n{result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def run_demo(options: DemoOptions, console: Console) -> None:
    started = time.monotonic()
    out = options.out.resolve()
    prepare_folder(out)
    console.print(f"[bold]fedsynth demo[/] in {out}")
    coordinator_toml = write_coordinator_toml(out / "coordinator")
    console.print(f"coordinator set up: {coordinator_toml}")

    sites = [*TRAINING_PROFILES, "external"]
    table = Table(title="Phantom hospitals")
    for column in ("site", "role", "studies", "per class", "cases stored", "series refused"):
        table.add_column(column)
    for n, name in enumerate(sites):
        home = out / "sites" / name
        dicom = home / "phantom-dicom"
        with console.status(f"site {name}: setting up the site agent and writing phantom patients"):
            site_agent("init", str(home), "--site-id", name)
            args = [
                "phantom",
                str(dicom),
                "--cases",
                str(options.cases),
                "--profile",
                name,
                "--seed",
                str(options.seed + n),
                "--matrix",
                DEMO_MATRIX,
                "--slice-mm",
                DEMO_SLICE_MM,
                "--balanced",
                "--preview",
            ]
            if n == 0:
                args.append("--defects")
            site_agent(*args)
        with console.status(f"site {name}: ingesting its DICOM into the private case store"):
            report_path = home / "logs" / "demo-ingest.json"
            site_agent(
                "ingest",
                str(dicom),
                "--config",
                str(home / "site.toml"),
                "--labels",
                str(dicom / "labels.csv"),
                "--report",
                str(report_path),
            )
            report = json.loads(report_path.read_text())
        counts = {c: 0 for c in DEFAULT_CLASSES}
        with (dicom / "labels.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                counts[row["label"]] += 1
        table.add_row(
            name,
            "external test" if name == "external" else "training",
            str(sum(counts.values())),
            "/".join(str(counts[c]) for c in DEFAULT_CLASSES),
            str(len(report["accepted"])),
            str(len(report["refused"])),
        )
        console.print(
            f"site {name}: site.toml, {sum(counts.values())} phantom studies, previews in {dicom / 'preview'}"
        )

    console.print(table)
    _train_and_export(out, list(TRAINING_PROFILES), console)
    page = write_overview(out, sites)
    console.print(f"Previews of every hospital, for a browser: {page}")
    console.print("per class: " + "/".join(DEFAULT_CLASSES), highlight=False)
    console.print(
        f"Broken inputs for ingestion tests: {out / 'sites' / sites[0] / 'phantom-dicom' / 'defects.csv'}"
    )
    console.print(
        f"[bold]Done[/] in {time.monotonic() - started:.0f} s. What this demo did: set up a coordinator "
        f"and {len(sites)} site agents ({len(TRAINING_PROFILES)} training sites and one external test "
        "site), each with its own phantom hospital written as real DICOM with labels, lesion masks "
        "and preview images, ingested by its site agent into its private case store; each training "
        f"site then trained its generator with DP-SGD at epsilon {DEMO_EPSILON} and exported a "
        f"synthetic set to {out / 'synthetic'}."
    )
    console.print("Not built yet, so not run: " + "; ".join(NOT_YET) + ".")


def _train_and_export(out: Path, sites: list[str], console: Console) -> None:
    """Each training site spends part of its budget on a generator and releases a synthetic set."""
    table = Table(title=f"DP generators (epsilon {DEMO_EPSILON} asked of each site)")
    for column in ("site", "patients", "epsilon", "delta", "noise", "sample rate", "steps", "exported"):
        table.add_column(column)
    for name in sites:
        config = str(out / "sites" / name / "site.toml")
        with console.status(f"site {name}: training its generator with DP-SGD (epsilon {DEMO_EPSILON})"):
            site_agent("train", "--config", config, "--epsilon", DEMO_EPSILON, "--round", "demo")
        target = out / "synthetic" / name
        with console.status(f"site {name}: sampling, auditing and exporting its synthetic set"):
            site_agent("export", str(target), "--config", config, "--per-class", DEMO_PER_CLASS)
        card = json.loads((target / "card.json").read_text())
        (contribution,) = card["sites"]
        privacy = contribution["privacy"]
        runs = sorted((out / "sites" / name / "models").glob("demo-*/run.json"))
        patients = json.loads(runs[-1].read_text())["patients"]
        table.add_row(
            name,
            str(patients),
            f"{privacy['epsilon']:.2f}",
            f"{privacy['delta']:.0e}",
            f"{privacy['noise_multiplier']:.2f}",
            f"{privacy['sample_rate']:.2f}",
            str(privacy["steps"]),
            f"{contribution['samples']} volumes",
        )
    console.print(table)
