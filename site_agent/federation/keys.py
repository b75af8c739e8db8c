"""The site's authentication key pair: the private key never leaves the site, the public key goes
to the coordinator operator, who registers it (`coordinator sites add`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from site_agent.errors import SiteAgentError


class SiteKeyError(SiteAgentError):
    """The site's key pair is missing or would be overwritten."""


def public_key_path(private_key: Path) -> Path:
    return private_key.with_suffix(".pub")


def generate_site_key(private_key: Path, *, force: bool = False) -> Path:
    """Write an EC P-384 key and its public key beside it, both in OpenSSH format (what Flower's
    SuperNode reads); the private key is owner-only from the moment it exists. Returns the public key."""
    public = public_key_path(private_key)
    if private_key.exists() and not force:
        raise SiteKeyError(
            f"{private_key} already exists; the coordinator knows this site by it. "
            "Pass --force only to replace it (then register the new public key again)."
        )
    private_key.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    tmp = private_key.with_name(f".{private_key.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    tmp.replace(private_key)
    ssh = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    public.write_bytes(ssh + b"\n")
    return public


def fingerprint(public_key_file: Path) -> str:
    """SHA-256 of the public key line, for operators to compare over the phone."""
    return hashlib.sha256(public_key_file.read_bytes().strip()).hexdigest()
