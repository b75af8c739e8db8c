"""The coordinator's certificate authority and the SuperLink's TLS certificate.

Sites trust exactly this CA (they get `ca.pem`, never a key) and the SuperLink presents a
certificate it signed. The CA key stays in the certificates folder, readable by its owner only.
SuperNode authentication is separate: each site's own EC key pair, registered by public key.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from coordinator.federation.errors import FederationError

CA_DAYS = 3650
SERVER_DAYS = 825  # what browsers and most TLS stacks still accept for a server certificate


class CertificateError(FederationError):
    """The certificate folder is missing files or would be overwritten."""


@dataclass(frozen=True)
class CertificateFiles:
    folder: Path

    @property
    def ca_certificate(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def superlink_certificate(self) -> Path:
        return self.folder / "superlink.pem"

    @property
    def superlink_key(self) -> Path:
        return self.folder / "superlink.key"

    def missing(self) -> list[Path]:
        wanted = (self.ca_certificate, self.superlink_certificate, self.superlink_key)
        return [path for path in wanted if not path.is_file()]

    def require(self) -> CertificateFiles:
        if missing := self.missing():
            raise CertificateError(
                f"TLS files missing: {', '.join(str(p) for p in missing)}. "
                "Create them with `coordinator certs init`, or run with --insecure for local development."
            )
        return self


def _write_private(path: Path, data: bytes) -> None:
    # Created with owner-only permissions from the start: the key is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _subject_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def init_certificates(folder: Path, *, hosts: list[str], force: bool = False) -> CertificateFiles:
    """Create a CA and a SuperLink certificate valid for `hosts` (names or IP addresses)."""
    files = CertificateFiles(folder)
    if not hosts:
        raise CertificateError("name at least one host (DNS name or IP) the SuperLink is reached at")
    existing = [p for p in (files.ca_certificate, files.ca_key) if p.exists()]
    if existing and not force:
        raise CertificateError(
            f"{existing[0]} already exists; sites trust this CA. Pass --force only to replace it "
            "(every site then needs the new ca.pem)."
        )
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)

    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedsynth coordinator CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA384())
    )

    server_key, server = _superlink_certificate(ca_key, ca_name, hosts)
    _write_private(files.ca_key, _key_pem(ca_key))
    _write_private(files.superlink_key, _key_pem(server_key))
    files.ca_certificate.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.superlink_certificate.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    return files


def renew_superlink_certificate(folder: Path, *, hosts: list[str]) -> CertificateFiles:
    """A new SuperLink key and certificate signed by the existing CA: sites trust it at once,
    since they trust the CA; restart the SuperLink to serve it. The old pair is kept beside it."""
    files = CertificateFiles(folder)
    if not hosts:
        raise CertificateError("name at least one host (DNS name or IP) the SuperLink is reached at")
    if missing := [p for p in (files.ca_certificate, files.ca_key) if not p.is_file()]:
        raise CertificateError(f"{missing[0]} is missing: a renewal needs the CA that sites trust")
    ca = x509.load_pem_x509_certificate(files.ca_certificate.read_bytes())
    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{files.ca_key} is not the EC key `certs init` writes")
    server_key, server = _superlink_certificate(ca_key, ca.subject, hosts)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for current in (files.superlink_certificate, files.superlink_key):
        if current.exists():
            current.replace(current.with_name(f"{current.name}.replaced-{stamp}"))
    _write_private(files.superlink_key, _key_pem(server_key))
    files.superlink_certificate.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    return files


def _superlink_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, hosts: list[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = datetime.now(UTC)
    server_key = ec.generate_private_key(ec.SECP384R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(_subject_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA384())
    )
    return server_key, server


def certificate_names(path: Path) -> set[str]:
    """The DNS names and IP addresses a certificate is valid for."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {
        *names.get_values_for_type(x509.DNSName),
        *(str(ip) for ip in names.get_values_for_type(x509.IPAddress)),
    }
