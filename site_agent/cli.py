"""`site-agent`: the command hospital IT runs next to PACS."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.classes import DEFAULT_CLASSES
from shared.cli_support import console, friendly_errors, root_options
from site_agent.cli_evaluate import evaluate
from site_agent.cli_federation import join, keygen
from site_agent.cli_generator import budget, export, sample, train
from site_agent.config import CONFIG_ENV_VAR, SiteReceive, load_site_settings
from site_agent.errors import CommandInputError
from site_agent.federation.keys import generate_site_key
from site_agent.site_toml import write_site_toml

if TYPE_CHECKING:
    from site_agent.ingest.report import IngestReport

# Commands import what they need when they run (torch, MONAI, pydicom...), so `--help`,
# `--version` and `init` answer at once.

app = typer.Typer(
    name="site-agent",
    help=(
        "The fedsynth site agent runs inside your hospital. It turns your chest CT into a private "
        "local store, trains a generator of synthetic CT under a privacy budget your hospital sets, "
        "and sends out only synthetic images. No patient image, name, identifier or file path ever "
        "leaves this machine.\n\n"
        "Start with `site-agent init DIR --site-id NAME`, then pass `--config DIR/site.toml` "
        f"(or set {CONFIG_ENV_VAR}) to the other commands."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    # A traceback must never print local variables: they can hold patient data.
    pretty_exceptions_show_locals=False,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help=f"Settings file. Default: ${CONFIG_ENV_VAR}, then ./site.toml."),
]


app.callback()(root_options("site-agent"))


@app.command()
@friendly_errors
def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder for this site's settings and data (created if missing).")
    ],
    site_id: Annotated[str, typer.Option("--site-id", help="Short name the coordinator knows this site by.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing site.toml.")] = False,
) -> None:
    """Set up a new site: writes DIR/site.toml (with a comment on every setting) and its data folders."""
    target = write_site_toml(directory, site_id, force=force)
    settings = load_site_settings(target)
    console.print(f"Wrote [bold]{target}[/] for site [bold]{settings.site_id}[/].")
    key = settings.federation.private_key
    if not key.exists():
        public = generate_site_key(key)
        console.print(
            f"Made this site's key pair; send [bold]{public}[/] (never the private key) to the "
            "coordinator operator when joining a federation."
        )
    console.print(
        f"Privacy budget cap: epsilon {settings.privacy.epsilon_cap:g}. Review the file, then run "
        f"other commands with --config {target}."
    )


@app.command("config")
@friendly_errors
def show_config(config: ConfigOption = None) -> None:
    """Check the settings file and show the settings in force (file plus FEDSYNTH_ variables)."""
    settings = load_site_settings(config)
    console.print_json(settings.model_dump_json())


@app.command()
@friendly_errors
def phantom(
    out: Annotated[Path | None, typer.Argument(help="New folder to write the phantom hospital into.")] = None,
    cases: Annotated[int, typer.Option("--cases", help="Number of studies (patients).")] = 12,
    profile: Annotated[
        str, typer.Option("--profile", help="Scanner and population profile; see --list-profiles.")
    ] = "site_a",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same patients, voxel for voxel.")] = 0,
    defects: Annotated[
        bool, typer.Option("--defects", help="Also write broken studies, listed in defects.csv.")
    ] = False,
    preview: Annotated[
        bool, typer.Option("--preview", help="Write preview/CLASS.png: three views per class.")
    ] = False,
    balanced: Annotated[
        bool,
        typer.Option("--balanced", help="Equal numbers of each class instead of the profile's prevalence."),
    ] = False,
    matrix: Annotated[
        int, typer.Option("--matrix", help="Pixels per row and column. 512 is realistic; 96-128 for demos.")
    ] = 512,
    slice_mm: Annotated[
        float | None, typer.Option("--slice-mm", help="Slice spacing in mm. Default: the profile's.")
    ] = None,
    shuffle: Annotated[
        bool | None,
        typer.Option(
            "--shuffle/--no-shuffle", help="Write files in random order. Default: as the profile does."
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            help="Studies made at once, in worker processes. Helps at --matrix 512, where each takes ~3 GB.",
        ),
    ] = 1,
    list_profiles: Annotated[
        bool, typer.Option("--list-profiles", help="Show the available profiles and exit.")
    ] = False,
) -> None:
    """Write synthetic test patients (a CT phantom) as real DICOM, with labels and lesion masks.

    For trying fedsynth out and testing your set-up without touching patient data. Writes one folder
    per study, labels.csv (study_uid,label,profile,...), masks/*.nii.gz aligned with each series, and
    with --defects the broken inputs hospitals really send, listed in defects.csv.
    """
    from shared.phantom import PhantomRequest, write_phantom
    from shared.phantom.defects import DEFECTS

    if list_profiles:
        _print_profiles()
        return
    if out is None:
        raise CommandInputError("give the output folder: site-agent phantom OUT --cases N --profile NAME")
    request = PhantomRequest(
        out=out,
        cases=cases,
        profile=profile,
        seed=seed,
        matrix=matrix,
        slice_mm=slice_mm,
        balanced=balanced,
        shuffle=shuffle,
        defects=defects,
        preview=preview,
        jobs=jobs,
    )
    total = cases + (len(DEFECTS) if defects else 0)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("writing studies", total=total)
        summary = write_phantom(request, lambda message: bar.update(task, advance=1, description=message))
    table = Table(title=f"Phantom hospital ({profile}, seed {seed}) in {summary.out}")
    table.add_column("class")
    table.add_column("studies", justify="right")
    for name in DEFAULT_CLASSES:
        table.add_row(name, str(summary.class_counts[name]))
    console.print(table)
    console.print(
        f"{summary.studies} studies, {summary.files} DICOM files, {summary.bytes / 1e6:.1f} MB; "
        f"labels in {summary.out / 'labels.csv'}, masks in {summary.out / 'masks'}"
    )
    if summary.defects:
        console.print(f"{len(summary.defects)} defective studies listed in {summary.out / 'defects.csv'}")
    for path in summary.previews:
        console.print(f"preview: {path}")


@app.command()
@friendly_errors
def ingest(
    dicom_dir: Annotated[Path, typer.Argument(help="Folder of DICOM files (any layout, any file names).")],
    config: ConfigOption = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels", help="CSV: study_uid,label[,split][,mask]. Unlisted studies stay unlabelled."
        ),
    ] = None,
    masks: Annotated[
        Path | None, typer.Option("--masks", help="Folder of lesion masks named <StudyInstanceUID>.nii.gz.")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Also write the JSON report here (one is always kept in logs/)."),
    ] = None,
) -> None:
    """Read a DICOM export into this site's private case store, checking every series.

    Each study's best CT series is checked (modality, orientation, missing or duplicate slices,
    gantry tilt, readable pixels), converted to Hounsfield units and cropped around the
    mediastinum. Refused series are listed with the reason. Running it again on the same files
    changes nothing; a changed series becomes a new version. Reports and logs name cases only by
    this site's own ids: use `site-agent locate REF DICOM_DIR` to find the file behind a reference.
    """
    from site_agent.ingest.pipeline import ingest as run_ingest

    settings = load_site_settings(config)
    if not dicom_dir.is_dir():
        raise CommandInputError(f"DICOM folder {dicom_dir} does not exist or is not a folder")
    with console.status("ingesting") as status:
        result = run_ingest(
            settings,
            dicom_dir,
            labels_csv=labels,
            masks_dir=masks,
            progress=lambda message: status.update(message),
        )
    stamp = result.started_at.replace(":", "").replace("-", "")
    kept = settings.paths.logs / f"ingest-{stamp}-{os.getpid()}.json"  # two runs in one second keep both
    result.write(kept)
    if report is not None:
        result.write(report)
    _print_ingest(result)
    console.print(f"report: {kept}" + (f" and {report}" if report else ""))


def _print_ingest(result: IngestReport) -> None:
    table = Table(title=f"{len(result.accepted)} case(s) in the store")
    for column in ("case", "status", "label", "split", "source mm", "slices", "mask"):
        table.add_column(column)
    for case in result.accepted:
        spacing = "x".join(f"{v:.2g}" for v in case.source_spacing_mm)
        table.add_row(
            case.case_id,
            case.status,
            case.label or "-",
            case.split,
            spacing,
            str(case.source_slices),
            "yes" if case.has_mask else "-",
        )
    console.print(table)
    for item in result.refused:
        where = f", file {item.file_ref}" if item.file_ref else ""
        console.print(
            f"refused {item.series_ref} ({item.case_id}{where}): {item.check}: {item.detail}", highlight=False
        )
    for skipped in result.skipped:
        console.print(f"skipped {skipped.series_ref} ({skipped.case_id}): {skipped.reason}", highlight=False)
    if result.unreadable_files:
        console.print(f"{len(result.unreadable_files)} file(s) with unreadable headers (see the report)")
    if result.labels_without_study:
        console.print(f"{result.labels_without_study} row(s) of the label file match no study in this folder")


cases_app = typer.Typer(help="List the cases in this site's store, or look at one.", no_args_is_help=False)
app.add_typer(cases_app, name="cases")


@cases_app.callback(invoke_without_command=True)
@friendly_errors
def cases(
    ctx: typer.Context,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the cases in the store (latest version of each): label, split, size."""
    from site_agent.ingest.store import CaseStore

    if ctx.invoked_subcommand is not None:
        return
    settings = load_site_settings(config)
    with CaseStore(settings.paths.store) as store:
        records = store.all_latest()
    if as_json:
        console.print_json(json.dumps([r.public() for r in records]))
        return
    table = Table(title=f"{len(records)} case(s) in {settings.paths.store}")
    for column in ("case", "version", "label", "split", "shape", "mask", "stored"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r.case_id,
            str(r.version),
            r.label or "-",
            r.split,
            "x".join(map(str, r.shape)),
            "yes" if r.has_mask else "-",
            r.created_at,
        )
    console.print(table)


@cases_app.command("show")
@friendly_errors
def cases_show(
    case_id: Annotated[str, typer.Argument(help="A case id from `site-agent cases`.")],
    png: Annotated[Path, typer.Option("--png", help="Write three orthogonal slices through the crop here.")],
    config: ConfigOption = None,
    version: Annotated[int | None, typer.Option("--version", help="Default: the latest.")] = None,
) -> None:
    """Write a picture of one stored case: axial, coronal and sagittal slices through the box."""
    from site_agent.cases_view import write_case_png
    from site_agent.ingest.store import CaseStore

    settings = load_site_settings(config)
    with CaseStore(settings.paths.store) as store:
        record, image, mask = store.load(case_id, version)
    write_case_png(record, image, mask, png)
    console.print(f"wrote {png}")


@app.command()
@friendly_errors
def locate(
    reference: Annotated[str, typer.Argument(help="A file-, series- or case- reference from a report.")],
    dicom_dir: Annotated[Path, typer.Argument(help="The DICOM folder that was ingested.")],
    config: ConfigOption = None,
) -> None:
    """Find the file(s) behind a reference in an ingest report (shown here only, never logged)."""
    from site_agent.ingest.pseudonyms import Pseudonyms, load_or_create_secret
    from site_agent.ingest.scan import scan

    settings = load_site_settings(config)
    names = Pseudonyms(load_or_create_secret(settings.paths.store))
    found = scan(dicom_dir)
    hits = set()
    for series in found.series:
        for inst in series.instances:
            if reference in (
                names.file_ref(inst.relative),
                names.series_ref(series.series_uid),
                names.case_id(series.study_uid),
            ):
                hits.add(inst.relative)
    hits |= {p for p, _ in found.unreadable if names.file_ref(p) == reference}
    if not hits:
        raise CommandInputError(f"no file under {dicom_dir} matches {reference}")
    for relative in sorted(hits):
        console.print(str(dicom_dir / relative), highlight=False)


@app.command()
@friendly_errors
def receive(
    config: ConfigOption = None,
    port: Annotated[
        int | None, typer.Option("--port", help="TCP port. Default: [receive] port in site.toml.")
    ] = None,
    ae_title: Annotated[
        str | None, typer.Option("--ae-title", help="This receiver's AE title. Default: [receive] ae_title.")
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Listen address. Default: [receive] host.")
    ] = None,
    idle_seconds: Annotated[
        float | None,
        typer.Option("--idle-seconds", help="Ingest a series after this long without new images."),
    ] = None,
) -> None:
    """Receive CT from PACS (DICOM C-STORE) and ingest each series once it is complete.

    Configure PACS to send to this host, port and AE title. Each series is ingested once no new
    image has arrived for it for --idle-seconds; refused series stay in incoming/refused/ for
    review. Stop with Ctrl-C.
    """
    from site_agent.receive import serve

    settings = load_site_settings(config)
    given = {"port": port, "ae_title": ae_title, "host": host, "idle_seconds": idle_seconds}
    overrides = {name: value for name, value in given.items() if value is not None}
    try:
        chosen = SiteReceive.model_validate({**settings.receive.model_dump(), **overrides})
    except ValidationError as exc:
        raise CommandInputError(
            f"invalid receive option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}"
        ) from None
    settings = settings.model_copy(update={"receive": chosen})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.print(
        f"receiving CT on {settings.receive.host}:{settings.receive.port} as "
        f"{settings.receive.ae_title}; series are ingested after {settings.receive.idle_seconds:g} s "
        "without new images. Ctrl-C stops.",
        highlight=False,
    )
    try:
        serve(settings, stop=stop)
    except KeyboardInterrupt:
        stop.set()
    except OSError as exc:
        raise CommandInputError(
            f"cannot listen on {settings.receive.host}:{settings.receive.port}: {exc.strerror}"
        ) from None


def _print_profiles() -> None:
    from shared.phantom import PROFILES

    table = Table(title="Phantom profiles")
    for column in (
        "name",
        "scanner",
        "kernel",
        "pixel mm",
        "slice mm",
        "noise HU",
        "HU offset",
        "contrast",
        "size",
    ):
        table.add_column(column)
    for p in PROFILES.values():
        table.add_row(
            p.name,
            p.model,
            p.kernel,
            f"{p.pixel_spacing_mm[0]:.2f}-{p.pixel_spacing_mm[1]:.2f}",
            f"{p.slice_spacing_mm:g}",
            f"{p.noise_hu:g}",
            f"{p.hu_offset:+g}",
            f"{p.contrast_rate:.0%}",
            f"{p.patient_size:.2f}",
        )
    console.print(table)
    for p in PROFILES.values():
        console.print(f"{p.name}: {p.description}.", highlight=False)


for command in (train, sample, export, budget, evaluate, keygen, join):
    app.command()(command)


def main() -> None:
    app()
