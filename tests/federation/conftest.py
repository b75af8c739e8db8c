"""Real federations on loopback: a SuperLink and site agents as processes, TLS and authentication on.

Phantom hospitals are written and ingested once per session, when a test first needs them; every
test works on copies, so each starts with an empty privacy ledger.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coordinator.config import CoordinatorSettings, load_coordinator_settings
from coordinator.coordinator_toml import write_coordinator_toml
from coordinator.federation.certificates import init_certificates
from coordinator.federation.local import LocalFederation
from shared.federation.processes import free_port
from shared.phantom import PhantomRequest, write_phantom
from site_agent.config import SiteSettings, load_site_settings
from site_agent.federation.keys import generate_site_key
from site_agent.ingest.pipeline import ingest
from tests.conftest import TEST_MATRIX, TEST_SLICE_MM, TRANSIENT, built_once
from tests.site_agent.conftest import tiny_site

SITES = {"site_a": "site_a", "site_b": "site_b", "site_c": "site_c", "site_d": "site_d"}
CASES = 14  # 2-3 held out per site, the rest (about 11 patients) train its generator


@dataclass(frozen=True)
class Hospital:
    site_id: str
    config: Path
    dicom: Path

    @property
    def settings(self) -> SiteSettings:
        return load_site_settings(self.config)

    @property
    def public_key(self) -> Path:
        return self.settings.federation.private_key.with_suffix(".pub")


class PhantomHospitals(dict[str, Hospital]):
    """The phantom hospitals, each written and ingested the first time a test of the run asks for
    it (once for every worker: `built_once`), so a run of two-site tests builds two."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self.tmp_path_factory = tmp_path_factory

    def __missing__(self, site_id: str) -> Hospital:
        def build(root: Path) -> None:
            write_phantom(
                PhantomRequest(
                    out=root / "dicom",
                    cases=CASES,
                    profile=SITES[site_id],
                    seed=40 + list(SITES).index(site_id),
                    matrix=TEST_MATRIX,
                    slice_mm=TEST_SLICE_MM,
                    balanced=True,
                )
            )
            settings = load_site_settings(tiny_site(root / site_id, site_id))
            generate_site_key(settings.federation.private_key)
            ingest(settings, root / "dicom", labels_csv=root / "dicom" / "labels.csv")

        root = built_once(self.tmp_path_factory, f"hospital-{site_id}", build)
        self[site_id] = hospital = Hospital(site_id, root / site_id / "site.toml", root / "dicom")
        return hospital


@pytest.fixture(scope="session")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> PhantomHospitals:
    return PhantomHospitals(tmp_path_factory)


class Federation:
    """A coordinator folder with certificates, its SuperLink running, and hospitals to join."""

    def __init__(self, root: Path, hospitals: dict[str, Hospital]) -> None:
        self.root = root
        self.source = hospitals
        self.config = write_coordinator_toml(root / "coordinator")
        text = self.config.read_text()
        text = text.replace("superlink_port = 9092", f"superlink_port = {free_port()}")
        text = text.replace("diagnosis_epochs = 60", "diagnosis_epochs = 3")
        self.config.write_text(text)
        self.settings: CoordinatorSettings = load_coordinator_settings(self.config)
        init_certificates(self.settings.paths.certificates, hosts=["127.0.0.1", "localhost"])
        self.local = LocalFederation(self.settings, self.config, root / "process-logs")
        self.hospitals: dict[str, Hospital] = {}

    def hospital(self, site_id: str, **site_toml: str) -> Hospital:
        """A private copy of a phantom hospital, with the coordinator's CA and optional edits."""
        source = self.source[site_id]
        folder = self.root / "sites" / site_id
        shutil.copytree(source.config.parent, folder, ignore=TRANSIENT)
        config = folder / source.config.name
        text = config.read_text()
        for old, new in site_toml.items():
            assert old in text, old
            text = text.replace(old, new)
        config.write_text(text)
        hospital = Hospital(site_id, config, source.dicom)
        shutil.copyfile(
            self.settings.paths.certificates / "ca.pem", hospital.settings.federation.ca_certificate
        )
        self.hospitals[site_id] = hospital
        return hospital

    def connect(self, site_id: str, **site_toml: str) -> Hospital:
        return self.connect_all({site_id: site_toml})[site_id]

    def connect_all(self, sites: dict[str, dict[str, str]]) -> dict[str, Hospital]:
        """Register and start every site at once (each with its site.toml edits), then wait until
        all are online."""
        joined = {}
        for site_id, site_toml in sites.items():
            hospital = self.hospital(site_id, **site_toml)
            self.local.register(site_id, hospital.public_key)
            self.local.join(site_id, hospital.config, wait=False)
            joined[site_id] = hospital
        self.local.wait_online(list(sites))
        return joined


@pytest.fixture
def federation(tmp_path: Path, hospitals: dict[str, Hospital]) -> Iterator[Federation]:
    fed = Federation(tmp_path, hospitals)
    fed.local.start_superlink()
    try:
        yield fed
    finally:
        fed.local.stop()
