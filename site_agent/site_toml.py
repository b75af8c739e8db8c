"""Writes the commented `site.toml` that `site-agent init` creates.

The text is written by hand so each setting carries a comment a hospital IT person can act on;
`tests/site_agent/test_config.py` checks it stays in step with `SiteSettings`.
"""

from __future__ import annotations

from pathlib import Path

from shared.settings import write_settings_file
from site_agent.config import CONFIG_FILE_NAME, SiteSettings

TEMPLATE = """\
# fedsynth site agent settings for site "{site_id}".
# Written by `site-agent init`. Relative paths are relative to this file's folder.
# Any setting can be overridden by an environment variable: FEDSYNTH_<SECTION>__<NAME>,
# for example FEDSYNTH_PRIVACY__EPSILON_CAP=4.

# The name the coordinator knows this site by. Letters, digits, '.', '_' and '-'.
site_id = "{site_id}"

# The diagnostic classes, in model output order. Change only together with the coordinator.
classes = [{classes}]

[paths]
# Preprocessed real cases. Patient data: keep on encrypted storage, never share.
store = "store"
# Where the DICOM receiver (`site-agent receive`) writes incoming instances.
incoming = "incoming"
# A copy of exactly what left this site, for your own audit.
exports = "exports"
# The privacy ledger: every release and its privacy cost. Back it up; never edit it.
ledger = "privacy/ledger.jsonl"
# Generator checkpoints (trained on patient data: they stay here).
models = "models"
# Log files. No patient name, identifier, UID or path is ever written to them.
logs = "logs"

[privacy]
# Total privacy budget (epsilon) this site will ever spend across all rounds.
# Requests that would go over it are refused before any training starts.
epsilon_cap = {epsilon_cap}
# Largest delta per release (probability that the epsilon guarantee fails). At most 1e-5.
delta = {delta}
# Privacy accountant: "rdp" (Renyi DP) or "prv" (privacy random variables, tighter).
accountant = "{accountant}"
# Allow exporting from non-private (epsilon = infinity) training. Only for phantom benchmarks.
allow_non_private_export = false

[preprocessing]
# Cases are cropped to a box of `box` voxels (x right-left, y front-back, z foot-head) at
# `spacing_mm`, centred on the mediastinum; it must hold thoracic inlet to diaphragm (about 250 mm).
# Each edge is a multiple of 8. CPU-only sites: box = [48, 48, 64] with spacing_mm = 4.0.
box = [{box}]
spacing_mm = {spacing_mm}
# Hounsfield window scaled to [-1, 1].
window_hu = [{window_lo}, {window_hi}]
# Fraction of labelled cases kept aside as real held-out data for evaluating models here.
holdout_fraction = {holdout_fraction}

[ingest]
# Series with fewer slices than this are not used.
min_slices = {min_slices}
# Kernels to use only when a study has no other series (regular expressions, any case):
# lung and bone kernels sharpen noise and edges.
avoid_kernels = [{avoid_kernels}]

[receive]
# The DICOM receiver (`site-agent receive`): route studies here from PACS.
ae_title = "{ae_title}"
port = {port}
# Listen address. 127.0.0.1 accepts only this machine; use the host's address for PACS.
host = "{host}"
# A series that received nothing for this many seconds is complete: it is ingested.
idle_seconds = {idle_seconds}

[generator]
# The synthetic-data generator, trained here with DP-SGD (`site-agent train`).
backend = "{backend}"
# Expected passes over the training patients; more steps cost more epsilon for the same noise.
epochs = {epochs}
# Expected number of real patients per step (each is drawn independently: Poisson sampling).
batch_size = {batch_size}
latent_dim = {latent_dim}
# Network width: 16 or more on a GPU; 4 to 8 for CPU-only demos.
width = {width}
learning_rate = {learning_rate}
# Each patient's gradient is clipped to this norm before noise is added.
max_grad_norm = {max_grad_norm}
# How Opacus computes per-patient gradients: "hooks" or "functorch" (see bench/generator.py).
grad_sample_mode = "{grad_sample_mode}"
# Seconds between training checkpoints (a crashed run resumes from the last one).
checkpoint_seconds = {checkpoint_seconds}

[audit]
# Memorisation audit before any export: a sample is "close" when it sits nearer to a training
# case than the `quantile` of fresh held-out patients do. More close samples than
# `max_close_fraction` blocks the export for your review.
quantile = {quantile}
max_close_fraction = {max_close_fraction}

[federation]
# The coordinator's SuperLink (HOST:PORT), as the coordinator operator tells you. `site-agent join`
# connects to it; nothing connects to this site.
superlink = "{superlink}"
# The coordinator's CA certificate (from the operator): the SuperLink must present a certificate
# it signed.
ca_certificate = "{ca_certificate}"
# This site's private key, made by `site-agent init` (or `site-agent keygen`). It never leaves the
# site; send the operator the `.pub` file beside it.
private_key = "{private_key}"
# Local port of the SuperNode's app runtime (loopback only). Change it when two agents share a host.
runtime_port = {runtime_port}
# Largest number of synthetic samples per class this site will produce for one round.
max_per_class = {max_per_class}
# Every message this site sends is also written here, byte for byte, for your audit.
egress_log = "{egress_log}"
# The SuperNode's own working folder.
home = "{home}"

[compute]
# "auto" uses a CUDA GPU when present, else the CPU; or "cpu", "cuda", "cuda:1".
device = "auto"
"""


def render_site_toml(site_id: str) -> str:
    defaults = SiteSettings(site_id=site_id)
    return TEMPLATE.format(
        site_id=defaults.site_id,
        classes=", ".join(f'"{name}"' for name in defaults.classes),
        epsilon_cap=defaults.privacy.epsilon_cap,
        delta=defaults.privacy.delta,
        accountant=defaults.privacy.accountant,
        box=", ".join(str(n) for n in defaults.preprocessing.box),
        spacing_mm=defaults.preprocessing.spacing_mm,
        window_lo=defaults.preprocessing.window_hu[0],
        window_hi=defaults.preprocessing.window_hu[1],
        holdout_fraction=defaults.preprocessing.holdout_fraction,
        min_slices=defaults.ingest.min_slices,
        avoid_kernels=", ".join(f'"{k}"' for k in defaults.ingest.avoid_kernels),
        ae_title=defaults.receive.ae_title,
        port=defaults.receive.port,
        host=defaults.receive.host,
        idle_seconds=defaults.receive.idle_seconds,
        backend=defaults.generator.backend,
        epochs=defaults.generator.epochs,
        batch_size=defaults.generator.batch_size,
        latent_dim=defaults.generator.latent_dim,
        width=defaults.generator.width,
        learning_rate=defaults.generator.learning_rate,
        max_grad_norm=defaults.generator.max_grad_norm,
        grad_sample_mode=defaults.generator.grad_sample_mode,
        checkpoint_seconds=defaults.generator.checkpoint_seconds,
        quantile=defaults.audit.quantile,
        max_close_fraction=defaults.audit.max_close_fraction,
        superlink=defaults.federation.superlink,
        ca_certificate=defaults.federation.ca_certificate.as_posix(),
        private_key=defaults.federation.private_key.as_posix(),
        runtime_port=defaults.federation.runtime_port,
        max_per_class=defaults.federation.max_per_class,
        egress_log=defaults.federation.egress_log.as_posix(),
        home=defaults.federation.home.as_posix(),
    )


def write_site_toml(directory: Path, site_id: str, *, force: bool = False) -> Path:
    """Create `directory/site.toml` and the folders it names; refuse to overwrite unless `force`."""
    text = render_site_toml(site_id)  # validates site_id before touching the disk
    paths = SiteSettings(site_id=site_id).paths
    folders = (paths.store, paths.incoming, paths.exports, paths.ledger.parent, paths.models, paths.logs)
    return write_settings_file(directory / CONFIG_FILE_NAME, text, force=force, folders=folders)
