"""`site-agent doctor`: the checks of site_agent/doctor.py as a table, or JSON; exit code 1 on a failure."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from shared.cli_support import console, friendly_errors
from site_agent.cli.options import ConfigOption

STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


@friendly_errors
def doctor(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Check this site before it goes live, and whenever something is wrong: settings, ledger and
    store integrity, free disk, permissions, PyTorch against the GPU, clock, certificates, the
    SuperLink and the DICOM port. Exit code 1 when any check fails."""
    from site_agent.doctor import run_checks

    checks = run_checks(config)
    if as_json:
        console.print_json(json.dumps([asdict(c) for c in checks]))
    else:
        table = Table(title="site-agent doctor")
        for column in ("check", "result", "detail", "what to do"):
            table.add_column(column, overflow="fold")
        for check in checks:
            table.add_row(check.name, Text(check.status, style=STYLE[check.status]), check.detail, check.fix)
        console.print(table)
        failed = sum(c.status == "fail" for c in checks)
        warned = sum(c.status == "warn" for c in checks)
        console.print(f"{len(checks)} checks: {failed} failed, {warned} warned.")
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)
