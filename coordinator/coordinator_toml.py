"""Writes the commented `coordinator.toml` that `coordinator init` creates."""

from __future__ import annotations

from pathlib import Path

from coordinator.config import CONFIG_FILE_NAME, CoordinatorPaths
from shared.classes import DEFAULT_CLASSES
from shared.settings import write_settings_file

TEMPLATE = """\
# fedsynth coordinator settings. Written by `coordinator init`.
# Relative paths are relative to this file's folder. Any setting can be overridden by an
# environment variable FEDSYNTH_<SECTION>__<NAME>, for example FEDSYNTH_API__PORT=8080.

# The diagnostic classes, in model output order. Every site must use the same list.
classes = [{classes}]

[paths]
# Pooled synthetic sets, trained models and round reports.
data = "data"
# Certificate authority, SuperLink certificate and the sites' public keys.
certificates = "certs"
logs = "logs"

[api]
# Address of the web API and dashboard. Keep 127.0.0.1 behind a reverse proxy.
host = "127.0.0.1"
port = 8000

[database]
# Empty: SQLite inside the data folder. Or a SQLAlchemy URL such as
# "postgresql+psycopg://fedsynth@db.example.org/fedsynth".
url = ""

[storage]
# Where published pooled sets and models are kept and served from. Empty: the folder
# data/store. Or an fsspec URL such as "s3://bucket/fedsynth" (install fedsynth[s3]); credentials
# come from the usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables, never from this file.
url = ""
# An S3-compatible endpoint (MinIO, Ceph RGW), e.g. "https://s3.example.org". Empty: AWS.
endpoint_url = ""

[federation]
# Where the Flower SuperLink listens for site agents.
superlink_host = "127.0.0.1"
superlink_port = 9092
# true: no TLS and no site authentication. Local development only, never with real sites.
insecure = false
# A round goes on with the sites that answered as long as at least this many did.
min_sites = 2
# No round waits longer than this for synthetic sets (seconds); slower sites are named as missing.
round_timeout_s = 3600.0
# Nor longer than this for the sites' metrics on the shared model.
evaluate_timeout_s = 900.0
# Training of the shared diagnostic model on each pooled set: most epochs, and early stopping.
diagnosis_epochs = 60
diagnosis_patience = 12
"""


def write_coordinator_toml(directory: Path, *, force: bool = False) -> Path:
    """Create `directory/coordinator.toml` and its folders; refuse to overwrite unless `force`."""
    text = TEMPLATE.format(classes=", ".join(f'"{name}"' for name in DEFAULT_CLASSES))
    paths = CoordinatorPaths()
    folders = (paths.data, paths.certificates, paths.logs)
    return write_settings_file(directory / CONFIG_FILE_NAME, text, force=force, folders=folders)
