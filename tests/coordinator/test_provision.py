"""A startup kit, end to end: `coordinator provision` writes it, `site-agent init --kit` sets the
site up from it, the operator registers the site's own public key, and the site joins a real
SuperLink with TLS, checked by `site-agent doctor` first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from coordinator.config import load_coordinator_settings
from coordinator.demo.run import local_coordinator
from coordinator.federation.flower_cli import flwr
from coordinator.federation.local import LocalFederation
from coordinator.federation.sites import list_sites
from site_agent.config import load_site_settings
from tests.doctor_runner import run_doctor


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], capture_output=True, text=True, check=False, timeout=120
    )


def test_a_site_set_up_from_its_kit_registers_its_own_key_and_joins(tmp_path: Path) -> None:
    config = local_coordinator(tmp_path / "coordinator", {})
    settings = load_coordinator_settings(config)
    kits = tmp_path / "kits"

    # Loopback is no address for a hospital elsewhere, nor one the SuperLink certificate lacks.
    refused = _run("coordinator", "provision", "site_k", "--out", str(kits), "--config", str(config))
    assert refused.returncode == 2 and "--superlink HOST:PORT" in refused.stderr, refused.stderr
    unnamed = _run(
        "coordinator", "provision", "site_k", "--out", str(kits), "--superlink", "fl.example.org:9092",
        "--config", str(config),
    )  # fmt: skip
    assert unnamed.returncode == 2 and "certs renew --host fl.example.org" in unnamed.stderr, unnamed.stderr
    assert not kits.exists()

    address = f"127.0.0.1:{settings.federation.superlink_port}"  # this machine is the hospital here
    made = _run(
        "coordinator",
        "provision",
        "site_k",
        "--out",
        str(kits),
        "--superlink",
        address,
        "--config",
        str(config),
    )
    assert made.returncode == 0, made.stderr
    kit = kits / "site_k"
    assert sorted(p.name for p in kit.iterdir()) == ["README.txt", "coordinator-ca.pem", "kit.json"]
    assert json.loads((kit / "kit.json").read_text())["superlink"] == address
    assert "coordinator sites add site_k --public-key site.pub" in (kit / "README.txt").read_text()
    assert not any("key" in p.name for p in kit.iterdir())  # nothing secret travels

    # A kit whose CA was swapped on the way is refused, and no site is set up from it.
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "kit.json").write_bytes((kit / "kit.json").read_bytes())
    (forged / "coordinator-ca.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    bad = _run("site_agent", "init", str(tmp_path / "forged-site"), "--kit", str(forged))
    assert bad.returncode == 2 and "not the CA certificate" in bad.stderr, bad.stderr
    assert not (tmp_path / "forged-site" / "site.toml").exists()

    site_dir = tmp_path / "hospital"
    init = _run("site_agent", "init", str(site_dir), "--kit", str(kit))
    assert init.returncode == 0, init.stderr
    site_config = site_dir / "site.toml"
    site = load_site_settings(site_config)
    assert site.site_id == "site_k" and site.federation.superlink == address
    assert site.federation.ca_certificate.read_bytes() == (kit / "coordinator-ca.pem").read_bytes()
    public = site.federation.private_key.with_suffix(".pub")
    assert site.federation.private_key.is_file() and public.is_file()

    with LocalFederation(settings, config, tmp_path / "logs") as federation:
        federation.start_superlink()
        added = _run(
            "coordinator", "sites", "add", "site_k", "--public-key", str(public), "--config", str(config)
        )
        assert added.returncode == 0, added.stderr
        code, found = run_doctor("site_agent", site_config)
        assert [c.status for c in found["SuperLink"]] == ["pass"], found["SuperLink"]
        assert code == 0
        federation.join("site_k", site_config)  # returns once its SuperNode is online, authenticated

        # The hospital leaves: its key is unregistered and kept as a record.
        removed = _run("coordinator", "sites", "remove", "site_k", "--config", str(config))
        assert removed.returncode == 0, removed.stderr
        assert list_sites(settings) == {}
        assert list((settings.paths.certificates / "sites").glob("site_k.pub.removed-*"))
        nodes = {n["node-id"]: n["status"] for n in flwr(settings, "supernode", "list")["nodes"]}
        assert list(nodes.values()) == ["unregistered"]  # the SuperLink refuses it from now on
