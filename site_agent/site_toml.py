"""Writes the commented `site.toml` that `site-agent init` creates.

Rendered from `SiteSettings` (`shared.settings_template`): each setting carries, as its comment,
the description a hospital IT person can act on, written once in `site_agent.config`.
"""

from __future__ import annotations

from pathlib import Path

from shared.settings import write_settings_file
from shared.settings_template import render_settings_file
from site_agent.config import CONFIG_FILE_NAME, SiteFederation, SiteSettings

HEADER = """\
fedsynth site agent settings for site "{site_id}".
Written by `site-agent init`. Relative paths are relative to this file's folder.

Any setting can be overridden by an environment variable: FEDSYNTH_<SECTION>__<NAME>,
for example FEDSYNTH_PRIVACY__EPSILON_CAP=4.
"""


def render_site_toml(site_id: str, superlink: str = "") -> str:
    defaults = SiteSettings(site_id=site_id, federation=SiteFederation(superlink=superlink))  # validates
    return render_settings_file(defaults, HEADER.format(site_id=defaults.site_id))


def write_site_toml(directory: Path, site_id: str, *, superlink: str = "", force: bool = False) -> Path:
    """Create `directory/site.toml` and the folders it names; refuse to overwrite unless `force`.
    `superlink` fills in [federation] superlink (from a startup kit)."""
    text = render_site_toml(site_id, superlink)  # validates site_id before touching the disk
    paths = SiteSettings(site_id=site_id).paths
    folders = (paths.store, paths.incoming, paths.exports, paths.ledger.parent, paths.models, paths.logs)
    return write_settings_file(directory / CONFIG_FILE_NAME, text, force=force, folders=folders)
