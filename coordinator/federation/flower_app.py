"""The Flower app a round runs, written where `flwr run` can bundle it.

The app is nothing but its pyproject: the components point at the ServerApp and ClientApp of the
installed fedsynth, so the bundle sent to sites holds no code (runtime dependency installation is
off everywhere). Its one run-config key, `round-dir`, tells the ServerApp which round to run.
"""

from __future__ import annotations

from pathlib import Path

from shared import __version__

APP_NAME = "fedsynth"  # also the folder name: Flower requires them to match its naming rule
PUBLISHER = "fedsynth"
COMPONENTS = {
    "serverapp": "coordinator.federation.server_app:app",
    "clientapp": "site_agent.federation.client_app:app",
}
RUN_CONFIG = {"round-dir": ""}

_PYPROJECT = """\
[project]
name = "{name}"
version = "{version}"
description = "fedsynth round: DP synthetic mediastinal CT, pooled diagnostic model, evaluation at every site"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "{publisher}"

[tool.flwr.app.components]
{components}

[tool.flwr.app.config]
{config}
"""

_README = """\
# fedsynth round app

Bundled by `coordinator rounds launch`. It carries no code: the ServerApp and ClientApp are the
ones installed with fedsynth at the coordinator and at each site.
"""


def write_app(parent: Path) -> Path:
    folder = parent / APP_NAME
    folder.mkdir(parents=True, exist_ok=True)
    text = _PYPROJECT.format(
        name=APP_NAME,
        version=__version__,
        publisher=PUBLISHER,
        components="\n".join(f'{key} = "{value}"' for key, value in COMPONENTS.items()),
        config="\n".join(f'{key} = "{value}"' for key, value in RUN_CONFIG.items()),
    )
    (folder / "pyproject.toml").write_text(text)
    (folder / "README.md").write_text(_README)
    return folder
