"""`site-agent`: the command hospital IT runs next to PACS."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from shared.cli_support import console, friendly_errors, root_options
from site_agent.cli.backup import backup, restore
from site_agent.cli.doctor import doctor
from site_agent.cli.evaluate import evaluate
from site_agent.cli.federation import join, keygen
from site_agent.cli.generator import budget, export, sample, train
from site_agent.cli.ingest import cases_app, ingest, locate, receive
from site_agent.cli.options import ConfigOption
from site_agent.cli.phantom import phantom
from site_agent.config import CONFIG_ENV_VAR, load_site_settings
from site_agent.federation.keys import generate_site_key
from site_agent.site_toml import write_site_toml

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

app.callback()(root_options("site-agent"))


@app.command()
@friendly_errors
def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder for this site's settings and data (created if missing).")
    ],
    site_id: Annotated[
        str | None, typer.Option("--site-id", help="Short name the coordinator knows this site by.")
    ] = None,
    kit: Annotated[
        Path | None,
        typer.Option("--kit", help="A startup kit from the coordinator (`coordinator provision`)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing site.toml.")] = False,
) -> None:
    """Set up a new site: writes DIR/site.toml (with a comment on every setting) and its data
    folders. With --kit, the site id, the SuperLink and the coordinator's CA come from the kit."""
    superlink = ""
    if kit is not None:
        from shared.startup_kit import CA_FILE, read_kit

        startup = read_kit(kit)
        if site_id not in (None, startup.site_id):
            raise typer.BadParameter(
                f"the kit is for site {startup.site_id!r}, not {site_id!r}", param_hint="--site-id"
            )
        site_id, superlink = startup.site_id, startup.superlink
    if site_id is None:
        raise typer.BadParameter("name the site (--site-id NAME) or give a startup kit (--kit KIT)")
    target = write_site_toml(directory, site_id, superlink=superlink, force=force)
    settings = load_site_settings(target)
    console.print(f"Wrote {target} for site {settings.site_id}.")
    if kit is not None:
        ca = settings.federation.ca_certificate
        ca.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kit / CA_FILE, ca)
        console.print(f"From the kit: the SuperLink {superlink} and the coordinator's CA at {ca}.")
    key = settings.federation.private_key
    if not key.exists():
        public = generate_site_key(key)
        console.print(
            f"Made this site's key pair; send {public} (never the private key) to the "
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


# In the order `--help` lists them: getting cases in, then the generator, then the federation.
app.command()(phantom)
app.command()(ingest)
app.add_typer(cases_app, name="cases")
for command in (
    locate,
    receive,
    train,
    sample,
    export,
    budget,
    evaluate,
    keygen,
    join,
    doctor,
    backup,
    restore,
):
    app.command()(command)


def main() -> None:
    app()
