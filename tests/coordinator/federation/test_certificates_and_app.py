"""The CA, the SuperLink certificate, and the Flower app a round bundles (which carries no code)."""

from __future__ import annotations

import ipaddress
import tomllib
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from coordinator.federation.certificates import CertificateError, CertificateFiles, init_certificates
from coordinator.federation.flower_app import COMPONENTS, PUBLISHER, RUN_CONFIG, write_app


def test_the_superlink_certificate_is_signed_by_the_ca_for_the_named_hosts_and_keys_are_private(
    tmp_path: Path,
) -> None:
    files = init_certificates(tmp_path / "certs", hosts=["superlink.example.org", "10.0.0.5"])
    ca = x509.load_pem_x509_certificate(files.ca_certificate.read_bytes())
    server = x509.load_pem_x509_certificate(files.superlink_certificate.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["superlink.example.org"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    for key in (files.ca_key, files.superlink_key):
        assert key.stat().st_mode & 0o077 == 0
    with pytest.raises(CertificateError, match="already exists"):
        init_certificates(tmp_path / "certs", hosts=["127.0.0.1"])
    with pytest.raises(CertificateError, match="coordinator certs init"):
        CertificateFiles(tmp_path / "elsewhere").require()


def test_the_round_app_matches_the_projects_flower_app_and_its_bundle_holds_no_code(
    repo_root: Path, tmp_path: Path
) -> None:
    from flwr.cli.build import build_fab_from_disk

    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    assert project["publisher"] == PUBLISHER
    assert project["components"] == COMPONENTS and project["config"] == RUN_CONFIG
    fab = build_fab_from_disk(write_app(tmp_path))
    names = zipfile.ZipFile(BytesIO(fab)).namelist()
    assert sorted(names) == [".info/CONTENT", "README.md", "pyproject.toml"]
    project_fab = build_fab_from_disk(repo_root)  # `flwr run .` from a checkout bundles no code either
    assert not [n for n in zipfile.ZipFile(BytesIO(project_fab)).namelist() if n.endswith(".py")]
