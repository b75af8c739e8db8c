"""The site's key pair, and `site-agent join` refusing to start without what it needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key

from site_agent.federation.keys import SiteKeyError, generate_site_key
from site_agent.site_toml import write_site_toml


def test_init_makes_an_owner_only_ssh_ec_key_pair_and_keygen_never_overwrites_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "site_agent", "init", str(tmp_path / "site"), "--site-id", "site_x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    key = tmp_path / "site" / "certs" / "site.key"
    assert key.stat().st_mode & 0o077 == 0
    private = load_ssh_private_key(key.read_bytes(), None)
    public = load_ssh_public_key((tmp_path / "site" / "certs" / "site.pub").read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp384r1"
    assert private.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]
    before = key.read_bytes()
    with pytest.raises(SiteKeyError, match="already exists"):
        generate_site_key(key)
    assert key.read_bytes() == before


def _join(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "site_agent", "join", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_join_names_what_is_missing_before_starting_anything(tmp_path: Path) -> None:
    config = write_site_toml(tmp_path / "site", "site_x")
    result = _join(config)
    assert result.returncode == 2 and "[federation] superlink" in result.stderr
    result = _join(config, "--superlink", "coordinator.example.org")
    assert result.returncode == 2 and "HOST:PORT" in result.stderr
    result = _join(config, "--superlink", "127.0.0.1:9092")
    assert (
        result.returncode == 2
        and "coordinator-ca.pem" in result.stderr
        and "ask the coordinator" in result.stderr
    )
