"""`site-agent phantom`: synthetic test patients written as real DICOM, for trying a set-up out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.classes import DEFAULT_CLASSES
from shared.cli_support import console, friendly_errors
from site_agent.errors import CommandInputError


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
