"""`site-agent doctor`: the checks of site_agent/doctor.py as a table, or JSON; exit code 1 on a failure."""

from __future__ import annotations

from typing import Annotated

import typer

from shared.cli_support import friendly_errors
from site_agent.cli.options import ConfigOption


@friendly_errors
def doctor(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Check this site before it goes live, and whenever something is wrong: settings, ledger and
    store integrity, free disk, permissions, PyTorch against the GPU, clock, certificates, the
    SuperLink and the DICOM port. Exit code 1 when any check fails."""
    from shared.doctor_checks import report
    from site_agent.doctor import run_checks

    if report("site-agent doctor", run_checks(config), as_json=as_json):
        raise typer.Exit(1)
