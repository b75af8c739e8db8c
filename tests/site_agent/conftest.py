"""A small trained site, built once per session: phantom DICOM, ingested at test size, one DP generator."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.phantom import PhantomRequest, write_phantom
from site_agent.config import SiteSettings, load_site_settings
from site_agent.generator.training_run import TrainedRun, train_generator
from site_agent.ingest.pipeline import ingest
from site_agent.ingest.pseudonyms import SECRET_FILE
from site_agent.privacy.ledger import Ledger
from site_agent.site_toml import write_site_toml
from tests.conftest import TEST_MATRIX, TEST_PREPROCESSING, TEST_SLICE_MM, TRANSIENT, built_once

# A tiny generator: the tests check accounting, files and privacy, not image quality.
TINY = {
    **TEST_PREPROCESSING,
    "width = 16": "width = 4",
    "latent_dim = 64": "latent_dim = 8",
    "batch_size = 8": "batch_size = 4",
    "epochs = 30.0": "epochs = 3.0",
    'backend = "lesionstats"': 'backend = "dpgan3d"',  # no foundation needed: plumbing, not images
}


def tiny_site(folder: Path, site_id: str = "site-t", **replace: str) -> Path:
    path = write_site_toml(folder, site_id)
    text = path.read_text()
    for old, new in {**TINY, **replace}.items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    return path


@dataclass(frozen=True)
class TrainedSite:
    config: Path
    dicom: Path
    run: TrainedRun

    @property
    def settings(self) -> SiteSettings:
        return load_site_settings(self.config)

    def copy(self, to: Path) -> TrainedSite:
        """A private copy a test may spend from (relative paths in site.toml follow the folder)."""
        shutil.copytree(self.config.parent, to, ignore=TRANSIENT)
        return TrainedSite(to / self.config.name, self.dicom, self.run)


def _build_trained_site(root: Path) -> None:
    dicom = root / "dicom"
    write_phantom(
        PhantomRequest(
            out=dicom,
            cases=24,
            profile="site_c",
            seed=5,
            matrix=TEST_MATRIX,
            slice_mm=TEST_SLICE_MM,
            balanced=True,
        )
    )
    settings = load_site_settings(tiny_site(root / "site"))
    # A fixed pseudonym key: the holdout draw is keyed by it, and with a fresh random key 1 run in
    # 80 held out 10 or more of the 24 patients, enough to estimate what the tests expect not to be.
    settings.paths.store.mkdir(parents=True, exist_ok=True)
    (settings.paths.store / SECRET_FILE).write_bytes(bytes(range(32)))
    (settings.paths.store / SECRET_FILE).chmod(0o600)
    ingest(settings, dicom, labels_csv=dicom / "labels.csv")
    train_generator(settings, epsilon=4.0)


@pytest.fixture(scope="session")
def trained_site(tmp_path_factory: pytest.TempPathFactory) -> TrainedSite:
    """A site with 24 phantom patients and one finished run at epsilon 4, built once per test run
    and shared by every worker: a test that spends or writes works on `.copy()`."""
    root = built_once(tmp_path_factory, "trained-site", _build_trained_site)
    settings = load_site_settings(root / "site" / "site.toml")
    (run_id,) = Ledger(settings.paths.ledger).runs()
    return TrainedSite(
        root / "site" / "site.toml", root / "dicom", TrainedRun.read(settings.paths.models / run_id)
    )
