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
from shared.errors import FedsynthError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_USAGE = 2  # the input was wrong: fix it and run again
console = Console(soft_wrap=True)  # never break a path across lines
err_console = Console(stderr=True, soft_wrap=True)


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn fedsynth's own errors into one clear line on stderr and exit code 2, not a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except FedsynthError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True)
            raise typer.Exit(EXIT_USAGE) from None

    return wrapper


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # pynetdicom logs whole datasets (patient names included) at debug level and association
    # details at info: keep it to warnings, whatever --verbose says.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


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
