"""`coordinator serve` and `coordinator tokens`: the coordinator as a web service, and who may use it.

Registered on the `coordinator` app by `coordinator.cli.main`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from coordinator.cli.options import ConfigOption
from coordinator.config import CONFIG_ENV_VAR, CONFIG_FILE_NAME, load_coordinator_settings
from coordinator.errors import CoordinatorError
from shared.cli_support import console, friendly_errors
from shared.process_lock import held_alone
from shared.settings import resolve_config_path


@contextmanager
def serving_alone(data: Path) -> Iterator[None]:
    """One `coordinator serve` per data folder: two would each run a watcher over the same rounds
    and object store, and record and clean up after each other."""
    busy = CoordinatorError(
        f"another `coordinator serve` is already serving the data folder {data}; stop it first, "
        "or give this one a coordinator.toml with its own [paths] data"
    )
    with held_alone(data / ".serve.lock", lambda: busy):
        yield


tokens_app = typer.Typer(
    name="tokens",
    help="API tokens: operator, researcher or site. A token is shown once; only its hash is kept.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
)


@friendly_errors
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Default: [api] host.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Default: [api] port.")] = None,
) -> None:
    """Run the coordinator's HTTP API (sites, rounds, datasets, audit log) until stopped."""
    import uvicorn

    from coordinator.service.app import create_app
    from coordinator.service.request_limits import server_config

    path = resolve_config_path(config, env_var=CONFIG_ENV_VAR, default_name=CONFIG_FILE_NAME)
    settings = load_coordinator_settings(path)
    app = create_app(settings, path.resolve())
    server = server_config(app, host or settings.api.host, port or settings.api.port, log_level="info")
    with serving_alone(settings.paths.data):
        uvicorn.Server(server).run()


@tokens_app.command("create")
@friendly_errors
def tokens_create(
    name: Annotated[str, typer.Option("--name", help="Who holds it, e.g. a person or a service.")],
    role: Annotated[str, typer.Option("--role", help="operator, researcher or site.")],
    site: Annotated[
        str | None, typer.Option("--site", help="For --role site: the site it belongs to.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Make a token and print it once. Store it now: it cannot be shown again."""
    from coordinator.federation.sites import list_sites
    from coordinator.service.database import Database
    from coordinator.service.tokens import create_token

    settings = load_coordinator_settings(config)
    if site is not None and site not in (known := list_sites(settings)):
        raise CoordinatorError(
            f"--site {site}: no such site is registered (known: {', '.join(known) or 'none yet'}); "
            "register it first with `coordinator sites add`"
        )
    database = Database.open(settings)
    try:
        with database.session() as session:
            token = create_token(session, name=name, role=role, site_id=site)
    finally:
        database.close()
    console.print(f"Token for {name} ({role}); shown only now:")
    console.print(token, highlight=False, soft_wrap=True)


@tokens_app.command("revoke")
@friendly_errors
def tokens_revoke(name: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    """Revoke a token at once; requests with it are refused from now on."""
    from coordinator.service.database import Database
    from coordinator.service.tokens import revoke_token

    database = Database.open(load_coordinator_settings(config))
    try:
        with database.session() as session:
            revoke_token(session, name)
    finally:
        database.close()
    console.print(f"Token {name} revoked.")
