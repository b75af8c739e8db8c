"""`site-agent join`: the site's Flower SuperNode, started with this site's settings.

The SuperNode dials out to the coordinator's SuperLink (nothing connects in to the hospital),
checks the SuperLink's certificate against the coordinator's CA, and proves its identity with the
site's private key. Its node config names site.toml, which is how the ClientApp finds the site.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shared.federation.processes import flower_environment, flower_executable, split_address
from site_agent.config import SiteSettings
from site_agent.errors import SiteAgentError
from site_agent.federation.node_settings import SITE_CONFIG_KEY


class JoinError(SiteAgentError):
    """The SuperNode cannot be started: no SuperLink address, or a missing certificate or key."""


@dataclass(frozen=True)
class SuperNodeCommand:
    argv: list[str]
    env: dict[str, str]


def supernode_command(
    settings: SiteSettings, config_file: Path, *, superlink: str | None, insecure: bool
) -> SuperNodeCommand:
    fed = settings.federation
    address = superlink or fed.superlink
    if not address:
        raise JoinError(
            "no SuperLink address: pass --superlink HOST:PORT or set [federation] superlink in site.toml"
        )
    try:
        split_address(address)
    except ValueError as exc:
        raise JoinError(f"--superlink: {exc}") from None
    argv = [
        flower_executable("flower-supernode"),
        "--superlink",
        address,
        "--port",
        str(fed.runtime_port),
        "--isolation",
        "subprocess",
        # JSON strings are valid TOML basic strings: any path survives Flower's parser.
        "--node-config",
        f"{SITE_CONFIG_KEY}={json.dumps(str(config_file.resolve()))}",
    ]
    if insecure:
        argv.append("--insecure")
    else:
        for what, path, hint in (
            (
                "the coordinator's CA certificate",
                fed.ca_certificate,
                "ask the coordinator operator for ca.pem",
            ),
            ("this site's private key", fed.private_key, "create it with `site-agent keygen`"),
        ):
            if not path.is_file():
                raise JoinError(f"{what} is missing: {path} ([federation] in site.toml); {hint}")
        argv += [
            "--root-certificates",
            str(fed.ca_certificate),
            "--auth-supernode-private-key",
            str(fed.private_key),
        ]
    return SuperNodeCommand(argv, flower_environment(fed.home))
