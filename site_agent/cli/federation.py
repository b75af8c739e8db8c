"""`site-agent keygen` and `site-agent join`: this site's identity and its connection to a coordinator.

Registered on the `site-agent` app by `site_agent.cli.main`.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from shared.cli_support import console, err_console, friendly_errors
from shared.settings import resolve_config_path
from site_agent.cli.options import ConfigOption
from site_agent.config import CONFIG_ENV_VAR, CONFIG_FILE_NAME, load_site_settings
from site_agent.federation.keys import fingerprint, generate_site_key
from site_agent.federation.supernode import supernode_command


@friendly_errors
def keygen(
    config: ConfigOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key.")] = False,
) -> None:
    """Create this site's authentication key pair ([federation] private_key in site.toml).

    The private key never leaves the site. Send the `.pub` file beside it to the coordinator
    operator, who registers it with `coordinator sites add`.
    """
    settings = load_site_settings(config)
    public = generate_site_key(settings.federation.private_key, force=force)
    console.print(f"Wrote this site's key pair. Send the coordinator operator {public}")
    console.print(f"Its fingerprint, to compare over the phone: {fingerprint(public)}", highlight=False)


@friendly_errors
def join(
    config: ConfigOption = None,
    superlink: Annotated[
        str | None,
        typer.Option("--superlink", help="The coordinator's SuperLink, HOST:PORT. Default: site.toml."),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="No TLS and no site authentication. Local development only, never with real data.",
        ),
    ] = False,
) -> None:
    """Connect this site to the coordinator and answer its rounds until stopped (Ctrl-C).

    Starts the site's Flower SuperNode. It dials out to the SuperLink, checks the coordinator's
    certificate, and authenticates with this site's key. Every request is checked against this
    site's settings and privacy ledger; every message sent is also written to the egress log.
    """
    path = resolve_config_path(config, env_var=CONFIG_ENV_VAR, default_name=CONFIG_FILE_NAME)
    settings = load_site_settings(path)
    command = supernode_command(settings, path, superlink=superlink, insecure=insecure)
    if insecure:
        err_console.print(
            "WARNING: --insecure: this site's traffic is NOT encrypted and the coordinator "
            "cannot verify who it is talking to. Use it for local development only, never with real "
            "patient data.",
            style="bold red",
        )
    console.print(
        f"site {settings.site_id}: joining the federation at {superlink or settings.federation.superlink}; "
        f"messages sent are logged in {settings.federation.egress_log}"
    )
    # The agent becomes the SuperNode: signals from a service manager or Ctrl-C reach it directly.
    os.execvpe(command.argv[0], command.argv, command.env)


__all__ = ["join", "keygen"]
