"""Writes the commented `coordinator.toml` that `coordinator init` creates, rendered from
`CoordinatorSettings` (`shared.settings_template`): each setting under its description."""

from __future__ import annotations

from pathlib import Path

from coordinator.config import CONFIG_FILE_NAME, CoordinatorSettings
from shared.settings import write_settings_file
from shared.settings_template import render_settings_file

HEADER = """\
fedsynth coordinator settings. Written by `coordinator init`.
Relative paths are relative to this file's folder. Any setting can be overridden by an
environment variable FEDSYNTH_<SECTION>__<NAME>, for example FEDSYNTH_API__PORT=8080.
"""


def render_coordinator_toml() -> str:
    return render_settings_file(CoordinatorSettings(), HEADER)


def write_coordinator_toml(directory: Path, *, force: bool = False) -> Path:
    """Create `directory/coordinator.toml` and its folders; refuse to overwrite unless `force`."""
    paths = CoordinatorSettings().paths
    folders = (paths.data, paths.certificates, paths.logs)
    return write_settings_file(
        directory / CONFIG_FILE_NAME, render_coordinator_toml(), force=force, folders=folders
    )
