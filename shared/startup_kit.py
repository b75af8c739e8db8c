"""A startup kit: what a coordinator hands a new site so that it can join with one `init`.

`coordinator provision SITE_ID` writes a folder with `kit.json` (the site id the coordinator
expects, the SuperLink address sites reach, the CA's sha256), the coordinator's CA certificate and
a README of the steps. `site-agent init DIR --kit KIT` reads it and writes a site.toml with those
values filled in. The kit holds nothing secret: the site makes its own key pair, and only its
public key goes back to the operator.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import FedsynthError
from shared.hashing import file_sha256

KIT_FILE = "kit.json"
CA_FILE = "coordinator-ca.pem"
README_FILE = "README.txt"

STEPS = """\
fedsynth startup kit for site "{site_id}" (made {made_at})

The coordinator's SuperLink: {superlink}
Its CA certificate: {ca_file} (sha256 {ca_sha256})
Nothing in this kit is secret. Your site's private key is made on your machine and never leaves it.

1. Install fedsynth on the machine next to PACS (README, "Guide for hospital IT").
2. Set up the site from this kit:
       site-agent init /srv/fedsynth --kit {kit_dir}
   It writes /srv/fedsynth/site.toml with the site id and the SuperLink filled in, copies the CA
   certificate, and makes the site's key pair (certs/site.key stays; certs/site.pub is public).
3. Send /srv/fedsynth/certs/site.pub to the coordinator operator, who registers it:
       coordinator sites add {site_id} --public-key site.pub
4. Check the site:  site-agent doctor --config /srv/fedsynth/site.toml
5. Ingest your CT, then join:  site-agent join --config /srv/fedsynth/site.toml
   (outbound only: this site dials {superlink}; nothing connects to it).
"""


class KitError(FedsynthError):
    """A startup kit that cannot be written or read (missing, damaged, or its CA does not match)."""


class StartupKit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    site_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    superlink: str = Field(pattern=r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
    ca_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    made_at: str


def write_kit(out: Path, *, site_id: str, superlink: str, ca_certificate: Path, force: bool = False) -> Path:
    """`out/<site_id>/`: kit.json, the CA certificate and the README of the steps."""
    try:
        kit = StartupKit(
            site_id=site_id,
            superlink=superlink,
            ca_sha256=file_sha256(ca_certificate),
            made_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise KitError(
            f"cannot make a kit: {problem['loc'][0]} {problem['input']!r}: {problem['msg']}"
        ) from None
    folder = out / site_id
    if folder.exists() and not force:
        raise KitError(f"{folder} exists already; pass --force to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca_certificate, folder / CA_FILE)
    (folder / KIT_FILE).write_text(kit.model_dump_json(indent=2) + "\n")
    (folder / README_FILE).write_text(STEPS.format(**kit.model_dump(), ca_file=CA_FILE, kit_dir=folder))
    return folder


def read_kit(folder: Path) -> StartupKit:
    """The kit in `folder`, its CA certificate checked against the hash it names."""
    path = folder / KIT_FILE
    try:
        kit = StartupKit.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise KitError(f"{path}: no startup kit here ({exc.strerror})") from None
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or "(the file)"
        raise KitError(f"{path}: {field}: {problem['msg']}") from None
    ca = folder / CA_FILE
    if not ca.is_file() or file_sha256(ca) != kit.ca_sha256:
        raise KitError(
            f"{ca} is missing or not the CA certificate {path} names: ask the operator for the kit again"
        )
    return kit
