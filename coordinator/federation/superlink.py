"""`coordinator superlink`: the Flower SuperLink, with this coordinator's database, TLS and site keys.

TLS and SuperNode authentication are on unless [federation] insecure (or --insecure) says otherwise:
only SuperNodes whose public key was registered (`coordinator sites add`) may connect.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.config import CoordinatorSettings
from coordinator.federation.certificates import CertificateFiles
from coordinator.federation.flower_cli import flower_home
from shared.federation.processes import flower_environment, flower_executable


@dataclass(frozen=True)
class SuperLinkCommand:
    argv: list[str]
    env: dict[str, str]


def superlink_command(settings: CoordinatorSettings, *, insecure: bool) -> SuperLinkCommand:
    fed = settings.federation
    home = flower_home(settings) / "superlink"
    home.mkdir(parents=True, exist_ok=True)
    argv = [
        flower_executable("flower-superlink"),
        "--database",
        str(home / "state.db"),
        "--host",
        fed.superlink_host,
        "--port",
        str(fed.superlink_port),
        "--isolation",
        "subprocess",
        "--disable-runtime-dependency-installation",
        "--log-file",
        str(settings.paths.logs / "superlink.log"),
    ]
    if insecure:
        argv.append("--insecure")
    else:
        files = CertificateFiles(settings.paths.certificates).require()
        argv += [
            "--ssl-ca-certfile",
            str(files.ca_certificate),
            "--ssl-certfile",
            str(files.superlink_certificate),
            "--ssl-keyfile",
            str(files.superlink_key),
            "--enable-supernode-auth",
        ]
    settings.paths.logs.mkdir(parents=True, exist_ok=True)
    return SuperLinkCommand(argv, flower_environment(home))
