"""`coordinator demo`: a whole federation on phantom data, on this machine, with the real programs.

The coordinator never imports the site agent: the demo runs `site-agent` as separate processes,
exactly as each hospital would on its own machine. It writes phantom hospitals, ingests them, makes
throwaway certificates, starts a SuperLink and one SuperNode per hospital on loopback (TLS and site
authentication on), runs one full round, and copies the round's report into OUT/report.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

from coordinator.client.api import ApiClient
from coordinator.config import CoordinatorSettings, load_coordinator_settings
from coordinator.coordinator_toml import write_coordinator_toml
from coordinator.demo.page import write_overview
from coordinator.demo.service import DemoTokens, make_tokens, publish_and_download, run_round
from coordinator.errors import CoordinatorError
from coordinator.federation.certificates import init_certificates
from coordinator.federation.local import LocalFederation
from coordinator.federation.rounds import RoundFolder, RoundReport
from coordinator.federation.summary import round_table
from shared.classes import DEFAULT_CLASSES
from shared.cli_support import EXIT_ALL_STORED, EXIT_SOME_REFUSED
from shared.crop_box import CPU_BOX, CPU_SPACING_MM
from shared.federation.processes import free_port
from shared.foundation.shipped import SHIPPED_FOUNDATION
from shared.phantom import TRAINING_PROFILES

MARKER = ".fedsynth-demo"
DEMO_MATRIX = "96"  # about 3.7 mm pixels: phantom hospitals are written in seconds
DEMO_SLICE_MM = "5"
ROUND_ID = "demo-round-1"
# What the demo does not do, said plainly at its end: it shows the product, not how good it is.
NOT_RUN = (
    "the benchmarks of synthetic against real training (python -m bench.utility) and of privacy "
    "attacks (python -m bench.privacy); their results are in bench/RESULTS.md"
)
BACKENDS = ("lesionstats", "ldm3d", "dpgan3d")
FOUNDATION_BACKENDS = ("lesionstats", "ldm3d")

# A narrow GAN keeps a CPU demo site's DP training to seconds (dpgan3d only).
DEMO_GENERATOR = {"FEDSYNTH_GENERATOR__WIDTH": "8"}
DEMO_EPSILON = 8.0
DEMO_PER_CLASS = 4
DEMO_COORDINATOR = {"diagnosis_epochs": "30", "diagnosis_patience": "8", "round_timeout_s": "900.0"}


class DemoError(CoordinatorError):
    """The demo could not run: its folder is in the way, or a step failed."""


@dataclass(frozen=True)
class DemoOptions:
    out: Path
    sites: int = 3
    cases: int = 24
    seed: int = 0
    box: tuple[int, int, int] = CPU_BOX  # DESIGN.md's CPU size; the tests run it smaller
    spacing_mm: float = CPU_SPACING_MM
    backend: str = "lesionstats"
    foundation: Path = SHIPPED_FOUNDATION  # the sites receive it from the coordinator in the round
    foundation_sha256: str | None = None  # set by run_demo once it has checked the foundation
    anatomy_bank: bool = False  # whether that foundation carries public anatomy (set with it)
    serve: bool = False  # keep the dashboard up after the round, until Ctrl-C

    @property
    def site_environment(self) -> dict[str, str]:
        """The demo's size and generator, given to the site agents the way an operator would: by
        variable."""
        environment = {
            "FEDSYNTH_PREPROCESSING__BOX": json.dumps(list(self.box)),
            "FEDSYNTH_PREPROCESSING__SPACING_MM": str(self.spacing_mm),
            "FEDSYNTH_GENERATOR__BACKEND": self.backend,
            **DEMO_GENERATOR,
        }
        return environment


def check_foundation(options: DemoOptions) -> tuple[str, bool]:
    """The foundation's sha256 and whether it has an anatomy bank, once it is known to fit the
    demo's box; refused before anything is written otherwise."""
    from shared.crop_box import box_text
    from shared.foundation.artefact import load_foundation
    from shared.foundation.files import FoundationError, foundation_sha256

    try:
        foundation = load_foundation(options.foundation)
    except FoundationError as exc:
        raise DemoError(f"--foundation: {exc}") from None
    spec = foundation.spec
    if tuple(spec.box) != tuple(options.box) or spec.spacing_mm != options.spacing_mm:
        raise DemoError(
            f"the foundation in {options.foundation} draws {box_text(spec.box)} boxes at "
            f"{spec.spacing_mm:g} mm, the demo crops {box_text(options.box)} at {options.spacing_mm:g} mm: "
            "pass --foundation with one trained at this box (coordinator foundation train), or "
            "--backend dpgan3d"
        )
    return foundation_sha256(options.foundation), foundation.anatomy is not None


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


def site_agent(
    options: DemoOptions, *args: str, accept: tuple[int, ...] = (0,)
) -> subprocess.CompletedProcess[str]:
    """Run the site agent CLI as its own process, as a hospital would; `accept` are the exit
    codes that are not a failure."""
    command = [sys.executable, "-m", "site_agent", *args]
    environment = {**os.environ, **options.site_environment}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    if result.returncode not in accept:
        raise DemoError(
            f"`site-agent {' '.join(args)}` failed:\n{result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same clean stop as Ctrl-C: every process the demo started ends


def run_demo(options: DemoOptions, console: Console) -> RoundReport:
    # Ctrl-C stops it cleanly even when a script started it in the background, where the shell
    # hands it SIGINT ignored and Python would not turn it into KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if not 1 <= options.sites <= len(TRAINING_PROFILES):
        raise DemoError(f"--sites must be 1 to {len(TRAINING_PROFILES)} (one per phantom profile)")
    if options.backend not in BACKENDS:
        raise DemoError(f"--backend must be one of {', '.join(BACKENDS)}, not {options.backend!r}")
    if options.backend in FOUNDATION_BACKENDS:
        sha256, bank = check_foundation(options)
        options = replace(options, foundation_sha256=sha256, anatomy_bank=bank)
        console.print(f"Generator: {options.backend}, from the public foundation {sha256[:12]}")
    started = time.monotonic()
    out = options.out.resolve()
    prepare_folder(out)
    console.print(f"fedsynth demo in {out}")
    sites = list(TRAINING_PROFILES)[: options.sites]
    config = local_coordinator(out / "coordinator", DEMO_COORDINATOR)
    foundation_id = _add_foundation(config, options)
    _hospitals(out, sites, options, console)

    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    settings = load_coordinator_settings(config)
    try:
        with LocalFederation(settings, config, out / "coordinator" / "logs" / "processes") as federation:
            with console.status("starting the coordinator's SuperLink (TLS, site authentication on)"):
                federation.start_superlink()
            with console.status("the hospitals register their keys and join the federation"):
                for name in sites:
                    home = out / "sites" / name
                    federation.register(name, home / "certs" / "site.pub")
                    federation.join(name, home / "site.toml", env=options.site_environment, wait=False)
                federation.wait_online(sites)
            console.print(f"SuperLink and {len(sites)} SuperNodes running on loopback, TLS and site keys on.")
            with console.status("starting the coordinator service (`coordinator serve`)"):
                url = federation.start_service()
                tokens = make_tokens(settings)
            console.print(f"Coordinator service at {url}; the round is launched through its API.")
            body = {
                "round_id": ROUND_ID,
                "epsilon": DEMO_EPSILON,
                "per_class": DEMO_PER_CLASS,
                "box": list(options.box),
                "spacing_mm": options.spacing_mm,
                "min_sites": min(2, len(sites)),
                "generator": options.backend,
                "foundation": foundation_id,
            }
            fed = settings.federation
            with ApiClient(url, tokens.operator) as operator:
                with console.status("round starting") as status:
                    report = run_round(
                        operator,
                        body,
                        fed.round_timeout_s + fed.evaluate_timeout_s + 600,
                        lambda r: status.update(f"round: {r.state}: {r.progress or r.message}"),
                    )
                if report.state == "completed":
                    with console.status("publishing the pooled set; a researcher downloads it"):
                        fetched = publish_and_download(
                            operator, tokens.researcher, report, out / "researcher" / "pooled"
                        )
                    console.print(
                        f"A researcher, with only a researcher token, downloaded pooled set "
                        f"v{report.pooled_version} and verified its {fetched.files} files: {fetched.folder}"
                    )
            _summarise(options, console, settings, out, sites, report, started)
            if options.serve:
                _serve_until_interrupted(console, url, tokens)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return report


def _summarise(
    options: DemoOptions,
    console: Console,
    settings: CoordinatorSettings,
    out: Path,
    sites: list[str],
    report: RoundReport,
    started: float,
) -> None:
    console.print(round_table(report))
    console.print(report.message, highlight=False)
    if report.state != "completed":
        raise DemoError(f"the round failed: {report.message}. Process logs: {out / 'coordinator' / 'logs'}")
    report_dir = _report_folder(out, RoundFolder.of(settings, ROUND_ID).folder, report)
    page = write_overview(out, sites)
    console.print(
        f"Report: {report_dir} (round.json, metrics, budgets, pooled set, montage, ROC). Previews: {page}"
    )
    console.print(
        f"Done in {time.monotonic() - started:.0f} s. {len(sites)} phantom hospitals kept their "
        f"DICOM and cases to themselves; each spent epsilon {DEMO_EPSILON:g} on {_what_trained(options)} "
        "and sent only synthetic volumes, over TLS, to the coordinator, which pooled them, trained the "
        "shared diagnostic model and had every hospital score it on its own held-out real cases.",
        highlight=False,
    )
    console.print(f"Not run by the demo: {NOT_RUN}.", highlight=False)


def _serve_until_interrupted(console: Console, url: str, tokens: DemoTokens) -> None:
    """`--serve`: keep the federation and its dashboard up for a newcomer to click through."""
    console.print(
        f"Dashboard: {url}/ui/ (Ctrl-C stops it and every process of the demo). Sign in with the "
        f"demo's operator token {tokens.operator} to see the round, its report and the sites, or its "
        f"researcher token {tokens.researcher} to browse and download the published set. Both "
        "tokens live only in this demo's database.",
        highlight=False,
        soft_wrap=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("Stopping the demo's processes.")


def _what_trained(options: DemoOptions) -> str:
    if options.backend == "lesionstats":
        return "one Gaussian-mechanism release of its lesion statistics per class, which placed lesions " + (
            "in public chest CT from the foundation's anatomy bank"
            if options.anatomy_bank
            else "in anatomy drawn by a public foundation model"
        )
    if options.backend == "ldm3d":
        return "a DP-SGD fine-tune of a public foundation model"
    return "a 3D GAN trained from scratch with DP-SGD"


def _set(text: str, key: str, value: str) -> str:
    return re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.MULTILINE)


def local_coordinator(directory: Path, values: dict[str, str]) -> Path:
    """`directory/coordinator.toml` for a federation on loopback (the demo's, a benchmark's): a free
    SuperLink port, `values` over the defaults, and throwaway certificates for this machine."""
    config = write_coordinator_toml(directory)
    text = _set(config.read_text(), "superlink_port", str(free_port()))
    for key, value in values.items():
        text = _set(text, key, value)
    config.write_text(text)
    settings = load_coordinator_settings(config)
    init_certificates(settings.paths.certificates, hosts=["127.0.0.1", "localhost"])
    return config


def _add_foundation(config: Path, options: DemoOptions) -> str | None:
    """The id under which the coordinator holds the demo's foundation (which the round names, so
    each hospital receives it from the coordinator), or None for a generator that needs none."""
    if options.backend not in FOUNDATION_BACKENDS:
        return None
    from coordinator.foundation.catalogue import add_foundation

    return add_foundation(load_coordinator_settings(config), options.foundation).foundation_id


def _hospitals(out: Path, sites: list[str], options: DemoOptions, console: Console) -> None:
    table = Table(title="Phantom hospitals")
    for column in ("site", "studies", "per class", "cases stored", "series refused"):
        table.add_column(column)
    ca = out / "coordinator" / "certs" / "ca.pem"
    for n, name in enumerate(sites):
        home = out / "sites" / name
        dicom = home / "phantom-dicom"
        with console.status(f"site {name}: setting up the site agent and writing phantom patients"):
            site_agent(options, "init", str(home), "--site-id", name)
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
            site_agent(options, *args)
        with console.status(f"site {name}: ingesting its DICOM into the private case store"):
            report_path = home / "logs" / "demo-ingest.json"
            site_agent(
                options,
                "ingest",
                str(dicom),
                "--config",
                str(home / "site.toml"),
                "--labels",
                str(dicom / "labels.csv"),
                "--report",
                str(report_path),
                accept=(EXIT_ALL_STORED, EXIT_SOME_REFUSED),  # the first site's export has defects
            )
            report = json.loads(report_path.read_text())
        shutil.copyfile(ca, home / "certs" / "coordinator-ca.pem")  # what the operator hands each site
        counts = {c: 0 for c in DEFAULT_CLASSES}
        with (dicom / "labels.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                counts[row["label"]] += 1
        table.add_row(
            name,
            str(sum(counts.values())),
            "/".join(str(counts[c]) for c in DEFAULT_CLASSES),
            str(len(report["accepted"])),
            str(len(report["refused"])),
        )
    console.print(table)
    console.print("per class: " + "/".join(DEFAULT_CLASSES), highlight=False)


def _report_folder(out: Path, round_dir: Path, report: RoundReport) -> Path:
    """OUT/report: what an operator would look at after the round."""
    target = out / "report"
    target.mkdir()
    shutil.copyfile(round_dir / "round.json", target / "round.json")
    (target / "metrics").mkdir()
    budgets = {}
    for site, result in report.sites.items():
        if result.metrics is not None:
            (target / "metrics" / f"{site}.json").write_text(result.metrics.to_json() + "\n")
        budgets[site] = {
            "spent_this_round": result.privacy.epsilon if result.privacy else None,
            "budget": result.budget.model_dump() if result.budget else None,
        }
    (target / "budgets.json").write_text(json.dumps(budgets, indent=2) + "\n")
    shutil.copytree(Path(str(report.pooled_dataset)), target / f"pooled-v{report.pooled_version}")
    for png in sorted((round_dir / "figures").glob("*.png")):
        shutil.copyfile(png, target / png.name)
    return target
