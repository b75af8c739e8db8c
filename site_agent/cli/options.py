"""The options several `site-agent` commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from site_agent.config import CONFIG_ENV_VAR

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help=f"Settings file. Default: ${CONFIG_ENV_VAR}, then ./site.toml."),
]
