"""The options and sub-command groups the `coordinator` commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coordinator.config import CONFIG_ENV_VAR

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help=f"Default: ${CONFIG_ENV_VAR}, then ./coordinator.toml.")
]


def sub_app(name: str, help_text: str) -> typer.Typer:
    return typer.Typer(
        name=name,
        help=help_text,
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_show_locals=False,
    )
