"""The site's settings as a ClientApp sees them: the SuperNode's node config names site.toml."""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context

from shared.errors import FedsynthError
from site_agent.config import SiteSettings, load_site_settings

SITE_CONFIG_KEY = "site-config"


def site_settings(context: Context) -> SiteSettings:
    value = context.node_config.get(SITE_CONFIG_KEY)
    if not isinstance(value, str) or not value:
        raise FedsynthError(
            f"the SuperNode was started without node config {SITE_CONFIG_KEY!r}; "
            "start it with `site-agent join`"
        )
    return load_site_settings(Path(value))
