"""`coordinator`: the command the coordinator operator runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coordinator.cli.datasets import datasets_app, models_app
from coordinator.cli.federation import certs_app, provision, rounds_app, sites_app, superlink
from coordinator.cli.foundation import foundation_app
from coordinator.cli.model import model_app, phantom_dataset
from coordinator.cli.service import serve, tokens_app
from coordinator.config import CONFIG_ENV_VAR, load_coordinator_settings
from coordinator.coordinator_toml import write_coordinator_toml
from shared.cli_support import console, friendly_errors, root_options
from shared.crop_box import CPU_BOX, CPU_SPACING_MM, box_text, parse_box

app = typer.Typer(
    name="coordinator",
    help=(
        "The fedsynth coordinator. It asks hospitals' site agents for synthetic CT made under "
        "differential privacy, pools what they send, trains the shared diagnostic model, has every "
        "site score it on its own real data, and publishes the pooled sets for researchers.\n\n"
        "Start with `coordinator demo` to see a whole federation on phantom data on this machine, "
        "or `coordinator init DIR` to set up a real coordinator."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    # A traceback must never print local variables: they can hold patient data.
    pretty_exceptions_show_locals=False,
)


app.callback()(root_options("coordinator"))


@app.command()
@friendly_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the coordinator's settings and data.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing coordinator.toml.")] = False,
) -> None:
    """Set up a coordinator: writes DIR/coordinator.toml (with a comment on every setting) and its folders."""
    target = write_coordinator_toml(directory, force=force)
    load_coordinator_settings(target)
    console.print(f"Wrote {target}. Review it, then pass --config {target} (or set {CONFIG_ENV_VAR}).")


@app.command("config")
@friendly_errors
def show_config(
    config: Annotated[
        Path | None, typer.Option("--config", help=f"Default: ${CONFIG_ENV_VAR}, then ./coordinator.toml.")
    ] = None,
) -> None:
    """Check the settings file and show the settings in force (file plus FEDSYNTH_ variables)."""
    console.print_json(load_coordinator_settings(config).model_dump_json())


@app.command()
@friendly_errors
def doctor(
    config: Annotated[
        Path | None, typer.Option("--config", help=f"Default: ${CONFIG_ENV_VAR}, then ./coordinator.toml.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Check the coordinator before opening a federation, and whenever something is wrong:
    settings, certificates and keys, the SuperLink, the database, the object store, the site
    registry, free disk and the clock. Exit code 1 when any check fails."""
    from coordinator.doctor import run_checks
    from shared.doctor_checks import report

    if report("coordinator doctor", run_checks(config), as_json=as_json):
        raise typer.Exit(1)


@app.command()
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for everything the demo writes.")] = Path(
        "demo-output"
    ),
    sites: Annotated[
        int, typer.Option("--sites", min=1, max=4, help="Phantom hospitals, one per profile.")
    ] = 3,
    cases: Annotated[
        int,
        typer.Option(
            "--cases",
            min=12,
            help="Phantom studies per hospital; at least 12, so each keeps enough training patients "
            "for a generator and held-out patients to score the shared model.",
        ),
    ] = 24,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the phantom patients.")] = 0,
    box: Annotated[
        str, typer.Option("--box", help="The box every site crops, x,y,z voxels (multiples of 8).")
    ] = box_text(CPU_BOX).replace("x", ","),
    spacing_mm: Annotated[
        float, typer.Option("--spacing-mm", help="The sites' voxel size.")
    ] = CPU_SPACING_MM,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="The sites' generator: lesionstats (the default), ldm3d (both start from --foundation) "
            "or dpgan3d.",
        ),
    ] = "lesionstats",
    foundation: Annotated[
        Path | None,
        typer.Option(
            "--foundation",
            help="A foundation folder at the demo's box (default: the one shipped for the CPU box).",
        ),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="After the round, keep the federation up and print the dashboard's address and the "
            "demo's tokens, until Ctrl-C.",
        ),
    ] = False,
) -> None:
    """Run a whole federation on phantom data on this machine: phantom hospitals with their site
    agents, a SuperLink and one SuperNode per hospital (TLS and site keys on), and one full round.

    Everything runs on loopback and writes only under --out; the round's report ends up in
    OUT/report. Re-running replaces the previous demo folder (and refuses to touch a folder the
    demo did not create). Ctrl-C stops every process the demo started.
    """
    from coordinator.demo.run import DemoOptions, run_demo
    from shared.foundation.shipped import SHIPPED_FOUNDATION

    options = DemoOptions(
        out=out,
        sites=sites,
        cases=cases,
        seed=seed,
        box=parse_box(box),
        spacing_mm=spacing_mm,
        backend=backend,
        foundation=foundation or SHIPPED_FOUNDATION,
        serve=serve,
    )
    run_demo(options, console)


app.add_typer(model_app)
app.add_typer(foundation_app)
app.add_typer(certs_app)
app.add_typer(sites_app)
app.add_typer(rounds_app)
app.command()(superlink)
app.command()(provision)
app.add_typer(tokens_app)
app.add_typer(datasets_app)
app.add_typer(models_app)
app.command()(serve)
app.command("phantom-dataset")(phantom_dataset)


def main() -> None:
    app()
