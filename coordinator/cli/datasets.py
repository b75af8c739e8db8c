"""`coordinator datasets|models`: what researchers run to find and download published pooled sets
and models from a coordinator, with a researcher token.

Registered on the `coordinator` app by `coordinator.cli.main`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from coordinator.cli.options import sub_app
from coordinator.client.api import (
    SERVER_ENV,
    TOKEN_ENV,
    ApiClient,
    ClientError,
    resolve_server,
    resolve_token,
)
from shared.cli_support import console, friendly_errors

datasets_app = sub_app("datasets", "Published pooled synthetic sets on a coordinator: list and download.")
models_app = sub_app("models", "Published diagnostic models on a coordinator: list and download.")

ServerOption = Annotated[
    str | None,
    typer.Option("--server", help=f"The coordinator's URL. Default: ${SERVER_ENV}, then 127.0.0.1:8000."),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", help=f"Your API token. Default: ${TOKEN_ENV} (keeps it out of shell history)."),
]
_DATASET = re.compile(r"^(?P<id>[A-Za-z0-9][A-Za-z0-9_.]*?)(?:(?:/v?|-v)(?P<version>\d+))?$")


def _client(server: str | None, token: str | None) -> ApiClient:
    return ApiClient(resolve_server(server), resolve_token(token))


def resolve_dataset(listed: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
    """`pooled` (its newest version you can see), `pooled/3`, `pooled/v3` or `pooled-v3`."""
    match = _DATASET.match(wanted)
    if match is None:
        raise ClientError(f"{wanted!r} is not a dataset: use ID, ID/VERSION or ID-vVERSION (e.g. pooled/3)")
    same = [d for d in listed if d["dataset_id"] == match["id"]]
    if match["version"] is not None:
        same = [d for d in same if d["version"] == int(match["version"])]
    if not same:
        raise ClientError(f"no dataset {wanted} is published (see `coordinator datasets list`)")
    return max(same, key=lambda d: int(d["version"]))


def _download(client: ApiClient, base: str, out: Path, total: int, what: str) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from coordinator.client.download import download

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress("{task.description}", *columns, console=console, transient=True) as bar:
        task = bar.add_task(what, total=total)
        result = download(client, base, out, progress=lambda n: bar.advance(task, n))
    console.print(
        f"{what}: {result.files} files verified against SHA256SUMS in {result.folder} "
        f"({result.fetched_bytes / 1e6:.1f} MB fetched, {result.resumed} resumed, "
        f"{result.already_there} already there)."
    )


@datasets_app.command("list")
@friendly_errors
def datasets_list(server: ServerOption = None, token: TokenOption = None) -> None:
    """The pooled sets you may download: version, classes, sites and size."""
    from rich.table import Table

    with _client(server, token) as client:
        listed = client.get_json("/datasets")
    table = Table(title=f"Datasets on {resolve_server(server)}")
    for column in ("dataset", "created", "cases", "sites", "MB", "published"):
        table.add_column(column)
    for d in listed:
        table.add_row(
            f"{d['dataset_id']}/{d['version']}",
            d["created_at"][:16].replace("T", " "),
            str(sum(d["class_counts"].values())),
            ", ".join(d["sites"]),
            f"{d['bytes'] / 1e6:.1f}",
            "yes" if d["published"] else "no",
        )
    console.print(table)


@datasets_app.command("download")
@friendly_errors
def datasets_download(
    dataset: Annotated[str, typer.Argument(help="pooled (newest version), pooled/3 or pooled-v3.")],
    out: Annotated[Path, typer.Option("--out", help="An empty or new folder; rerun to resume.")],
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Download a set file by file, resuming where an earlier try stopped, and verify every file
    against its SHA256SUMS. The folder then reads as the set itself (dataset.json, card.json, ...)."""
    with _client(server, token) as client:
        entry = resolve_dataset(client.get_json("/datasets"), dataset)
        name = f"{entry['dataset_id']}/{entry['version']}"
        _download(client, f"/datasets/{name}", out, int(entry["bytes"]), f"dataset {name}")


@models_app.command("list")
@friendly_errors
def models_list(server: ServerOption = None, token: TokenOption = None) -> None:
    """The diagnostic models you may download."""
    from rich.table import Table

    with _client(server, token) as client:
        listed = client.get_json("/models")
    table = Table(title=f"Models on {resolve_server(server)}")
    for column in ("model", "round", "task", "trained on", "created", "published"):
        table.add_column(column)
    for m in listed:
        table.add_row(
            m["model_sha256"][:16],
            m["round_id"],
            m["task"],
            m["trained_on"] or "-",
            m["created_at"][:16].replace("T", " "),
            "yes" if m["published"] else "no",
        )
    console.print(table)


@models_app.command("download")
@friendly_errors
def models_download(
    model: Annotated[str, typer.Argument(help="The model's sha256, or a unique prefix of it.")],
    out: Annotated[Path, typer.Option("--out", help="An empty or new folder; rerun to resume.")],
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Download a model's files, verified against its SHA256SUMS; `coordinator model evaluate` and
    `site-agent evaluate` take the folder as it is."""
    with _client(server, token) as client:
        matches = [m for m in client.get_json("/models") if m["model_sha256"].startswith(model.lower())]
        if len(matches) != 1:
            found = "no" if not matches else "more than one"
            raise ClientError(f"{found} published model matches {model!r} (see `coordinator models list`)")
        (entry,) = matches
        digest = entry["model_sha256"]
        _download(client, f"/models/{digest}", out, int(entry["bytes"]), f"model {digest[:12]}")
