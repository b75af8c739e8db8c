"""`site-agent ingest|cases|locate|receive`: getting CT into the private case store and looking at it."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from shared.cli_support import (
    EXIT_ALL_STORED,
    EXIT_NOTHING_STORED,
    EXIT_SOME_REFUSED,
    console,
    friendly_errors,
)
from site_agent.cli.options import ConfigOption
from site_agent.config import SiteReceive, load_site_settings
from site_agent.errors import CommandInputError

if TYPE_CHECKING:
    from site_agent.ingest.report import IngestReport


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
    from site_agent.ingest.store import CaseStore

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
    with CaseStore(settings.paths.store) as store:
        held = len(store.all_latest())
    _print_ingest(result, held)
    console.print(f"report: {kept}" + (f" and {report}" if report else ""))
    outcome = ingest_exit_code(result)
    if outcome != EXIT_ALL_STORED:
        raise typer.Exit(outcome)


def ingest_exit_code(result: IngestReport) -> int:
    if not result.accepted:
        return EXIT_NOTHING_STORED
    if result.refused or result.unreadable_files:
        return EXIT_SOME_REFUSED
    return EXIT_ALL_STORED


def _print_ingest(result: IngestReport, held: int) -> None:
    table = Table(title=f"{len(result.accepted)} case(s) stored or already stored by this run")
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
        files = [item.file_ref, *item.other_file_refs] if item.file_ref else []
        where = f", {'file' if len(files) == 1 else 'files'} {' '.join(files)}" if files else ""
        console.print(
            f"refused {item.series_ref} ({item.case_id}{where}): {item.check}: {item.detail}", highlight=False
        )
    for skipped in result.skipped:
        console.print(f"skipped {skipped.series_ref} ({skipped.case_id}): {skipped.reason}", highlight=False)
    if result.unreadable_files:
        console.print(f"{len(result.unreadable_files)} file(s) with unreadable headers (see the report)")
    if result.labels_without_study:
        console.print(f"{result.labels_without_study} row(s) of the label file match no study in this folder")
    console.print(f"The store holds {held} case(s).")


cases_app = typer.Typer(help="List the cases in this site's store, or look at one.", no_args_is_help=False)


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
    from site_agent.ingest.cases_view import write_case_png
    from site_agent.ingest.store import CaseStore

    settings = load_site_settings(config)
    with CaseStore(settings.paths.store) as store:
        record, image, mask = store.load(case_id, version)
    write_case_png(record, image, mask, png)
    console.print(f"wrote {png}")


@friendly_errors
def locate(
    reference: Annotated[str, typer.Argument(help="A file-, series- or case- reference from a report.")],
    dicom_dir: Annotated[Path, typer.Argument(help="The DICOM folder that was ingested.")],
    config: ConfigOption = None,
) -> None:
    """Find the file(s) behind a reference in an ingest report (shown here only, never logged)."""
    from shared.dicom.scan import scan
    from site_agent.ingest.pseudonyms import Pseudonyms, load_or_create_secret

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
        # A name that is not valid UTF-8 is shown with its odd bytes escaped (as \xff), not a crash.
        shown = os.fsencode(dicom_dir / relative).decode("utf-8", "backslashreplace")
        console.print(shown, highlight=False)


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
    from site_agent.ingest.receive import serve

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
