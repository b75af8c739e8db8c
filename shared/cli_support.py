"""What both command-line tools share: error reporting, logging set-up, version option."""

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared import __version__
from shared.disk_errors import disk_refused
from shared.errors import FedsynthError
from shared.log_redaction import guard_logging

P = ParamSpec("P")
R = TypeVar("R")

EXIT_USAGE = 2  # the input was wrong: fix it and run again
# `site-agent ingest` tells its outcomes apart, for a hospital's scripts (and the demo):
EXIT_ALL_STORED = 0  # every study stored (or already stored, unchanged)
EXIT_SOME_REFUSED = 1  # some stored, some series or files refused: the report says which and why
EXIT_NOTHING_STORED = 3  # not one study stored: everything refused, or no CT in the folder
# soft_wrap: never break a path across lines. markup off: what we print holds text from settings,
# reports and Flower, and rich would eat anything in brackets ("[ingest] avoid_kernels").
console = Console(soft_wrap=True, markup=False)
err_console = Console(stderr=True, soft_wrap=True, markup=False)


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn fedsynth's own errors, and a disk that is full, into one clear line on stderr and exit
    code 2, not a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except FedsynthError as exc:
            _print_error(str(exc))
            raise typer.Exit(EXIT_USAGE) from None
        except Exception as exc:
            if not disk_refused(exc):
                raise
            where = f" {exc.filename}" if isinstance(exc, OSError) and exc.filename else ""
            _print_error(
                f"the disk refused to write{where} (it is full, or over a quota or size limit). What "
                "was stored before is intact and nothing half-written was kept: free some space and "
                "run the command again."
            )
            raise typer.Exit(EXIT_USAGE) from None

    return wrapper


def _print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # pynetdicom logs whole datasets (patient names included) at debug level and association
    # details at info: keep it to warnings, whatever --verbose says.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    guard_logging()


def version_callback(program: str) -> Callable[[bool], None]:
    def show(value: bool) -> None:
        if value:
            console.print(f"{program} {__version__}")
            raise typer.Exit()

    return show


def root_options(program: str) -> Callable[..., None]:
    """The options every fedsynth command accepts before its sub-command: --version and --verbose."""

    def root(
        version: Annotated[
            bool,
            typer.Option(
                "--version",
                callback=version_callback(program),
                is_eager=True,
                help="Show the installed version and exit.",
            ),
        ] = False,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show detailed log messages.")] = False,
    ) -> None:
        setup_logging(verbose)

    return root


def status_bar() -> Progress:
    """A transient progress bar with a `status` field for figures that change as work goes on
    (epsilon so far, losses, validation scores)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
