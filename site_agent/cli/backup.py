"""`site-agent backup` and `site-agent restore`: what a site cannot rebuild, kept and put back
without ever forgetting spend (site_agent/backup.py says how)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from shared.cli_support import console, err_console, friendly_errors
from shared.settings import resolve_config_path
from site_agent.cli.options import ConfigOption
from site_agent.config import CONFIG_ENV_VAR, CONFIG_FILE_NAME, load_site_settings


@friendly_errors
def backup(
    dest: Annotated[Path, typer.Argument(help="Folder the archive is written to (created if missing).")],
    config: ConfigOption = None,
) -> None:
    """Back up the privacy ledger, the pseudonym secret, the case index, the settings and the key
    pair into one owner-only archive. Safe while the agent runs and trains."""
    from site_agent.backup import backup as write_backup

    path = resolve_config_path(config, env_var=CONFIG_ENV_VAR, default_name=CONFIG_FILE_NAME)
    summary = write_backup(load_site_settings(path), path, dest)
    spent = "infinity (a non-private set left)" if math.isinf(summary.epsilon) else f"{summary.epsilon:.3f}"
    console.print(
        f"Wrote {summary.archive}: {', '.join(summary.files)}; the ledger's {summary.ledger_events} "
        f"event(s), epsilon spent {spent}. It holds the site's secrets: keep it as safe as the site."
    )


@friendly_errors
def restore(
    archive: Annotated[Path, typer.Argument(help="A file written by `site-agent backup`.")],
    config: ConfigOption = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Verify the archive and say what a restore would do; change nothing."),
    ] = False,
    accept_less_spend: Annotated[
        str,
        typer.Option(
            "--accept-less-spend",
            metavar="REASON",
            help="Restore even a ledger that lacks events the current one records (it forgets spend). "
            "Logged with REASON in logs/restore.jsonl.",
        ),
    ] = "",
) -> None:
    """Put a backup back: verify every file, refuse a ledger that would forget spend, keep every
    file it replaces as NAME.replaced-<time>. Stop the agent first."""
    from site_agent.backup import restore as put_back

    path = resolve_config_path(config, env_var=CONFIG_ENV_VAR, default_name=CONFIG_FILE_NAME)
    summary = put_back(archive, path, accept_less_spend=accept_less_spend, check_only=check)
    if summary.missing_events:
        which = "would lack" if check else "lacks"
        err_console.print(
            f"warning: the restored ledger {which} {summary.missing_events} event(s) of the one it "
            f"replaces (accepted: {accept_less_spend}); the replaced ledger is kept beside it.",
            highlight=False,
        )
    verb = "Would restore" if check else "Restored"
    console.print(
        f"{verb} site {summary.site_id}: {', '.join(summary.restored)} "
        f"(the ledger's {summary.ledger_events} event(s))."
    )
    for note in summary.kept:
        console.print(f"Kept {note}.")
    for kept in summary.replaced:
        console.print(f"Kept the replaced file as {kept}.")
