"""`coordinator certs|superlink|sites|rounds`: running the federation.

Registered on the `coordinator` app by `coordinator.cli.main`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from coordinator.cli.options import ConfigOption, sub_app
from coordinator.config import (
    CONFIG_ENV_VAR,
    CONFIG_FILE_NAME,
    CoordinatorSettings,
    load_coordinator_settings,
)
from coordinator.federation.round_order import RoundOrder, described
from shared.cli_support import console, err_console, friendly_errors
from shared.crop_box import parse_box
from shared.errors import FedsynthError
from shared.settings import resolve_config_path

certs_app = sub_app("certs", "The coordinator's certificate authority and the SuperLink's TLS certificate.")
sites_app = sub_app("sites", "Register hospitals' site agents by their public keys, and list them.")
rounds_app = sub_app("rounds", "Launch rounds (synthesize, pool, train, evaluate) and follow them.")


HostOption = Annotated[
    list[str] | None,
    typer.Option(
        "--host", help="A name or IP sites reach the SuperLink at (repeat). Loopback is always added."
    ),
]


def _hosts(settings: CoordinatorSettings, given: list[str] | None) -> list[str]:
    hosts = list(
        dict.fromkeys([*(given or []), settings.federation.superlink_host, "127.0.0.1", "localhost"])
    )
    return [h for h in hosts if h not in ("0.0.0.0", "::", "")]


def _config_path(config: Path | None) -> Path:
    return resolve_config_path(config, env_var=CONFIG_ENV_VAR, default_name=CONFIG_FILE_NAME)


@certs_app.command("init")
@friendly_errors
def certs_init(
    config: ConfigOption = None,
    host: HostOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing CA (sites then need the new ca.pem).")
    ] = False,
) -> None:
    """Create the CA and the SuperLink's certificate in [paths] certificates."""
    from coordinator.federation.certificates import init_certificates

    settings = load_coordinator_settings(config)
    hosts = _hosts(settings, host)
    files = init_certificates(settings.paths.certificates, hosts=hosts, force=force)
    console.print(f"CA and SuperLink certificate for {', '.join(hosts)} in {files.folder}.")
    console.print(f"Give every site {files.ca_certificate} (never ca.key).")


@friendly_errors
def provision(
    site_id: Annotated[str, typer.Argument(help="The id the new site will have.")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder the kit is written into (as OUT/SITE_ID).")
    ] = Path("kits"),
    superlink: Annotated[
        str | None,
        typer.Option("--superlink", help="HOST:PORT sites reach the SuperLink at. Default: [federation]."),
    ] = None,
    config: ConfigOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing kit for this site.")] = False,
) -> None:
    """Write a startup kit for a new site: its id, the SuperLink address, the CA certificate and
    the steps. The site makes its own key pair; register its public key with `sites add`."""
    from coordinator.federation.certificates import CertificateFiles, certificate_names
    from shared.startup_kit import write_kit

    settings = load_coordinator_settings(config)
    fed = settings.federation
    address = superlink or f"{fed.superlink_host}:{fed.superlink_port}"
    host = address.rpartition(":")[0]
    if superlink is None and host in ("0.0.0.0", "::", "", "127.0.0.1", "localhost"):
        raise typer.BadParameter(
            f"[federation] superlink_host is {fed.superlink_host!r}, which sites elsewhere cannot reach; "
            "name the address they use: --superlink HOST:PORT",
            param_hint="--superlink",
        )
    files = CertificateFiles(settings.paths.certificates).require()
    if host not in certificate_names(files.superlink_certificate):
        raise typer.BadParameter(
            f"the SuperLink certificate does not name {host!r}, so sites would refuse it; "
            f"renew it first: coordinator certs renew --host {host}",
            param_hint="--superlink",
        )
    folder = write_kit(
        out, site_id=site_id, superlink=address, ca_certificate=files.ca_certificate, force=force
    )
    console.print(f"Wrote the startup kit for {site_id} in {folder}: give the site the whole folder.")
    console.print(f"When it sends back its site.pub: coordinator sites add {site_id} --public-key site.pub")


@certs_app.command("renew")
@friendly_errors
def certs_renew(
    config: ConfigOption = None,
    host: HostOption = None,
) -> None:
    """Renew the SuperLink's certificate with the same CA: sites need nothing new. Restart the
    SuperLink afterwards."""
    from coordinator.federation.certificates import renew_superlink_certificate

    settings = load_coordinator_settings(config)
    files = renew_superlink_certificate(settings.paths.certificates, hosts=_hosts(settings, host))
    console.print(f"New SuperLink certificate in {files.superlink_certificate}; restart the SuperLink.")


@friendly_errors
def superlink(
    config: ConfigOption = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="No TLS and no site authentication: local development only.")
    ] = False,
) -> None:
    """Run the Flower SuperLink that site agents connect to, until stopped (Ctrl-C).

    Its state (registered sites, runs, messages) is kept in a database under [paths] data, so a
    restart loses nothing. TLS and site authentication are on unless --insecure.
    """
    from coordinator.federation.superlink import superlink_command

    settings = load_coordinator_settings(config)
    insecure = insecure or settings.federation.insecure
    command = superlink_command(settings, insecure=insecure)
    if insecure:
        err_console.print(
            "WARNING: --insecure: traffic is NOT encrypted and ANY SuperNode may connect. "
            "Local development only; never with real sites.",
            style="bold red",
        )
    fed = settings.federation
    console.print(
        f"SuperLink on {fed.superlink_host}:{fed.superlink_port}; "
        f"log in {settings.paths.logs / 'superlink.log'}"
    )
    os.execvpe(command.argv[0], command.argv, command.env)


@sites_app.command("add")
@friendly_errors
def sites_add(
    site_id: Annotated[str, typer.Argument(help="The site's id (its site.toml site_id).")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The site's .pub file from `site-agent keygen`.")
    ],
    config: ConfigOption = None,
) -> None:
    """Register a site's public key with the SuperLink (which must be running)."""
    from coordinator.federation.sites import add_site

    site = add_site(load_coordinator_settings(config), site_id, public_key)
    console.print(
        f"Site {site.site_id} registered as node {site.node_id}; key fingerprint {site.fingerprint}"
    )


@sites_app.command("remove")
@friendly_errors
def sites_remove(
    site_id: Annotated[str, typer.Argument(help="The site's id.")],
    config: ConfigOption = None,
) -> None:
    """Unregister a site: its key can no longer connect (the SuperLink must be running). Its
    results in past rounds and pooled sets stay; its public key is kept as a record."""
    from coordinator.federation.sites import remove_site

    site = remove_site(load_coordinator_settings(config), site_id)
    console.print(f"Site {site.site_id} (node {site.node_id}) removed; its key can no longer connect.")


@sites_app.command("list")
@friendly_errors
def sites_list(config: ConfigOption = None) -> None:
    """The registered sites."""
    from rich.table import Table

    from coordinator.federation.sites import list_sites

    table = Table(title="Registered sites")
    for column in ("site", "node", "key fingerprint", "added"):
        table.add_column(column)
    for site in list_sites(load_coordinator_settings(config)).values():
        table.add_row(site.site_id, str(site.node_id), site.fingerprint[:16], site.added_at)
    console.print(table)


@rounds_app.command("launch")
@friendly_errors
def rounds_launch(
    epsilon: Annotated[float, typer.Option("--epsilon", help=described("epsilon"))],
    per_class: Annotated[int, typer.Option("--per-class", min=1, help=described("per_class"))],
    sites: Annotated[
        str | None, typer.Option("--sites", help="Comma-separated site ids. Default: every registered site.")
    ] = None,
    round_id: Annotated[str | None, typer.Option("--round-id", help=described("round_id"))] = None,
    box: Annotated[str | None, typer.Option("--box", help=described("box"))] = None,
    spacing_mm: Annotated[float | None, typer.Option("--spacing-mm", help=described("spacing_mm"))] = None,
    delta: Annotated[float | None, typer.Option("--delta", help=described("delta"))] = None,
    min_sites: Annotated[int | None, typer.Option("--min-sites", min=1, help=described("min_sites"))] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help=described("timeout_s"))] = None,
    generator: Annotated[str | None, typer.Option("--generator", help=described("generator"))] = None,
    foundation: Annotated[str | None, typer.Option("--foundation", help=described("foundation"))] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the round to its end.")] = True,
    config: ConfigOption = None,
) -> None:
    """Start a round on the SuperLink and follow it: synthesis at each site, pooling, the shared
    model, and its evaluation back at every site."""
    from coordinator.federation.launch import follow, launch_round
    from coordinator.federation.summary import round_table

    path = _config_path(config)
    settings = load_coordinator_settings(path)
    given = {
        "epsilon": epsilon,
        "per_class": per_class,
        "sites": [s.strip() for s in sites.split(",") if s.strip()] if sites else None,
        "round_id": round_id,
        "box": parse_box(box) if box else None,
        "spacing_mm": spacing_mm,
        "delta": delta,
        "min_sites": min_sites,
        "timeout_s": timeout,
        "generator": generator,
        "foundation": foundation,
    }
    order = _round_order({k: v for k, v in given.items() if v is not None})
    folder = launch_round(settings, path, order)
    run_id = folder.read_report().flower_run_id
    console.print(f"Round {folder.folder.name} started as Flower run {run_id}; report: {folder.report_path}")
    if not wait:
        return
    with console.status("starting") as status:
        report = follow(settings, folder, lambda r: status.update(f"{r.state}: {r.progress or r.message}"))
    console.print(round_table(report))
    console.print(report.message, highlight=False)
    if report.state != "completed":
        raise typer.Exit(1)


def _round_order(given: dict[str, object]) -> RoundOrder:
    try:
        return RoundOrder.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "options"
        option = "--timeout" if field == "timeout_s" else "--" + field.replace("_", "-")
        raise FedsynthError(f"{option}: {first['msg']}") from None


@rounds_app.command("cancel")
@friendly_errors
def rounds_cancel(round_id: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    """Cancel a round that has not finished. The ServerApp stops within seconds; what sites already
    spent of their budget stays spent."""
    from coordinator.federation.launch import cancel_round
    from coordinator.federation.rounds import RoundFolder

    settings = load_coordinator_settings(config)
    report = cancel_round(settings, RoundFolder.of(settings, round_id), by="cli")
    if report.state == "cancelled":
        console.print(f"Round {round_id} cancelled.")
    else:
        console.print(f"Round {round_id}: cancel requested; it is {report.state} and stops within seconds.")


@rounds_app.command("list")
@friendly_errors
def rounds_list(config: ConfigOption = None) -> None:
    """Every round, oldest first."""
    from rich.table import Table

    from coordinator.federation.rounds import list_rounds

    table = Table(title="Rounds")
    for column in ("round", "state", "created", "sites answered", "pooled set", "message"):
        table.add_column(column)
    for r in list_rounds(load_coordinator_settings(config)):
        answered = sum(1 for s in r.sites.values() if s.synthesis == "answered")
        table.add_row(
            r.round_id,
            r.state,
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            f"{answered}/{len(r.sites)}",
            f"v{r.pooled_version}" if r.pooled_version else "-",
            r.message[:60],
        )
    console.print(table)


@rounds_app.command("show")
@friendly_errors
def rounds_show(
    round_id: Annotated[str, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json", help="The whole report as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """A round's report: state, each site's outcome, budget and metrics."""
    from coordinator.federation.errors import FederationError
    from coordinator.federation.launch import reconcile
    from coordinator.federation.rounds import RoundFolder
    from coordinator.federation.summary import round_table

    settings = load_coordinator_settings(config)
    folder = RoundFolder.of(settings, round_id)
    try:
        report = reconcile(settings, folder)
    except FederationError as exc:
        report = folder.read_report()
        if not report.finished:
            err_console.print(f"Cannot ask Flower whether this round is still running: {exc}")
    if as_json:
        console.print_json(report.model_dump_json())
        return
    console.print(round_table(report))
    console.print(report.message, highlight=False)


__all__ = ["certs_app", "provision", "rounds_app", "sites_app", "sub_app", "superlink"]
