"""`coordinator doctor` against a coordinator ready to open (a real SuperLink with TLS, renewed once
from the same CA, a migrated database, a registered site) and against one broken six ways: each is
named, with what to do."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from coordinator.config import load_coordinator_settings
from coordinator.demo.run import local_coordinator
from coordinator.federation.certificates import CertificateFiles
from coordinator.federation.local import LocalFederation
from coordinator.service.database import Database
from site_agent.federation.keys import generate_site_key
from tests.doctor_runner import run_doctor
from tests.expired_certificate import write_expired_certificate


def test_a_coordinator_ready_to_open_passes_and_one_broken_six_ways_is_told_what_to_do(
    tmp_path: Path,
) -> None:
    config = local_coordinator(tmp_path / "coordinator", {})
    settings = load_coordinator_settings(config)
    Database.open(settings).close()  # migrated, as `coordinator serve` leaves it
    with LocalFederation(settings, config, tmp_path / "logs") as federation:
        federation.start_superlink()
        public = generate_site_key(tmp_path / "site_a" / "site.key")
        federation.register("site_a", public)
        # Rotation: a new SuperLink certificate from the same CA, served after a restart.
        files = CertificateFiles(settings.paths.certificates)
        before = x509.load_pem_x509_certificate(files.superlink_certificate.read_bytes()).serial_number
        renewed = subprocess.run(
            [sys.executable, "-m", "coordinator", "certs", "renew", "--config", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert renewed.returncode == 0, renewed.stderr
        federation.stop_superlink()
        federation.start_superlink()
        address = ("127.0.0.1", settings.federation.superlink_port)
        served = ssl.get_server_certificate(address, ca_certs=str(files.ca_certificate))
        after = x509.load_pem_x509_certificate(served.encode()).serial_number
        assert after != before and list(settings.paths.certificates.glob("superlink.pem.replaced-*"))
        code, found = run_doctor("coordinator", config)
    for name in (
        "settings",
        "coordinator CA",
        "SuperLink certificate",
        "SuperLink key",
        "CA key",
        "SuperLink",
        "database",
        "object store",
        "site registry",
    ):
        assert [c.status for c in found[name]] == ["pass"], found[name]
    assert "schema current" in found["database"][0].detail
    assert found["site registry"][0].detail == "1 site(s) registered, each key kept"
    assert code == 0

    # The SuperLink is stopped now. Then: its key readable by others, its certificate expired, a
    # database that is not there, an object store that is a file, and a damaged site registry.
    os.chmod(files.superlink_key, 0o644)
    write_expired_certificate(files.superlink_certificate)
    store = tmp_path / "not-a-folder"
    store.write_text("a file")
    text = config.read_text().replace('url = ""\n# An S3', f'url = "{store}"\n# An S3')
    marker = 'db.example.org/fedsynth".\nurl = ""'
    assert marker in text
    config.write_text(
        text.replace(marker, marker.replace('""', '"postgresql+psycopg://fedsynth@127.0.0.1:1/none"'))
    )
    (settings.paths.data / "sites.json").write_text("{not json")

    code, found = run_doctor("coordinator", config)
    assert code == 1
    expected = {
        "SuperLink key": ("is readable by others (mode 644)", "chmod 600"),
        "SuperLink certificate": ("expired 3 days ago", "coordinator certs renew"),
        "SuperLink": ("cannot connect", "that the SuperLink runs"),
        "database": ("cannot connect", "[database] url"),
        "object store": ("cannot write in", "ownership"),
        "site registry": ("sites.json is damaged", "restore"),
    }
    for name, (detail, fix) in expected.items():
        (check,) = found[name]
        assert check.status == "fail" and detail in check.detail and fix in check.fix, check
