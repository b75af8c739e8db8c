"""Fixtures shared by the whole suite: phantom data is built once per session, at test size."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from numpy.typing import NDArray

from shared.phantom import PhantomRequest, PhantomSummary, write_phantom

# Test size: small enough for a 2-core CI machine, large enough that every structure shows.
TEST_MATRIX = 96
TEST_SLICE_MM = 5.0
# The box of site.toml at test size: 192 x 192 x 288 mm, the whole mediastinum in 32x32x48 voxels.
TEST_BOX = (32, 32, 48)
TEST_SPACING_MM = 6.0
TEST_PREPROCESSING = {
    "box = [96, 96, 128]": f"box = [{', '.join(map(str, TEST_BOX))}]",
    "spacing_mm = 2.0": f"spacing_mm = {TEST_SPACING_MM}",
}


# What a reader of a shared folder leaves behind for a moment: SQLite's write-ahead log and shared
# memory appear while any process has the case store open and vanish when it closes (the builder
# closed it, so all the data is in the database itself). A copy leaves them out, or it would race
# another worker's reader.
TRANSIENT = shutil.ignore_patterns("*-wal", "*-shm")


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder that `build` fills once for the whole run, whichever xdist worker asks first; the
    other workers wait for it and share it (a session fixture alone is built once per worker, and
    the costly ones are minutes of CPU on a 2-core machine). Nothing may write into it afterwards:
    tests copy what they change (with `ignore=TRANSIENT`)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's own temp folder
    folder = root / f"built-once-{name}"
    with FileLock(str(root / f"built-once-{name}.lock")):
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a builder that failed half way
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


# Test files that take minutes, slowest first (the durations table at the end of a run). They are
# handed out first, so no worker starts one at the end while the other has nothing left: longest
# first is the classic schedule for two machines, and a 4-minute file started last costs 4 minutes.
SLOW_FILES = (
    "tests/federation/test_failures.py",
    "tests/coordinator/test_demo.py",
    "tests/federation/test_round.py",
    "tests/site_agent/generator/test_training_run.py",
    "tests/coordinator/diagnosis/test_model_cli.py",
    "tests/site_agent/generator/test_ldm3d.py",
    "tests/site_agent/federation/test_answers.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: n for n, name in enumerate(SLOW_FILES)}
    root = Path(str(config.rootpath))
    order = {id(item): n for n, item in enumerate(items)}

    def key(item: pytest.Item) -> tuple[int, int]:
        name = Path(str(item.path)).relative_to(root).as_posix()
        return rank.get(name, len(SLOW_FILES)), order[id(item)]

    items.sort(key=key)


@pytest.fixture(scope="session")
def phantom_site(tmp_path_factory: pytest.TempPathFactory) -> PhantomSummary:
    """One study of each class plus every defect, as a site would receive them (profile site_b)."""
    out = tmp_path_factory.mktemp("phantom") / "site_b"
    request = PhantomRequest(
        out=out,
        cases=6,
        profile="site_b",
        seed=11,
        matrix=TEST_MATRIX,
        slice_mm=TEST_SLICE_MM,
        balanced=True,
        defects=True,
        preview=True,
    )
    return write_phantom(request)


# Variables that tell the tests where their data and services are, not product settings.
TEST_INFRASTRUCTURE = {"FEDSYNTH_REAL_CT", "FEDSYNTH_TEST_POSTGRES_URL"}


@pytest.fixture(autouse=True)
def _no_fedsynth_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not pick up settings from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("FEDSYNTH_") and name not in TEST_INFRASTRUCTURE:
            monkeypatch.delenv(name)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def _handbook_candidates() -> list[Path]:
    """Where ../shared may be: beside this checkout, or beside the local checkout it was cloned from."""
    root = Path(__file__).resolve().parents[1]
    candidates = [root.parent / "shared"]
    origin = subprocess.run(
        ["git", "-C", str(root), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if origin and Path(origin).is_dir():  # a clone of a local checkout (a newcomer's `git clone .`)
        candidates.append(Path(origin).resolve().parent / "shared")
    return candidates


def real_ct_dir() -> Path:
    """The real chest CT series of ../shared/data/real-ct (or $FEDSYNTH_REAL_CT)."""
    configured = os.environ.get("FEDSYNTH_REAL_CT")
    bases = [Path(configured)] if configured else [c / "data" / "real-ct" for c in _handbook_candidates()]
    for base in bases:
        if (base / "Lung_Dx-A0001").is_dir():
            return base / "Lung_Dx-A0001"
    message = f"real CT not found in {', '.join(map(str, bases))}; set FEDSYNTH_REAL_CT"
    if os.environ.get("CI"):
        pytest.fail(message)  # CI always has it: its absence is a broken set-up, not a skip
    pytest.skip(message)


@pytest.fixture
def site_config(tmp_path: Path) -> Path:
    """A fresh site at test size (TEST_BOX at TEST_SPACING_MM)."""
    from site_agent.site_toml import write_site_toml

    path = write_site_toml(tmp_path / "site", "test-site")
    text = path.read_text()
    for old, new in TEST_PREPROCESSING.items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    return path


@dataclass(frozen=True)
class TinyFoundation:
    folder: Path
    sha256: str


def bank_index(image: NDArray[np.floating], bank: NDArray[np.uint8]) -> int:
    """The anatomy bank box that `image` is a drawn shift of (compared inside the shifts' reach),
    or -1."""
    from shared.foundation.anatomy import MAX_SHIFT_VOXELS, from_bank

    m = MAX_SHIFT_VOXELS
    inner = (slice(m, -m),) * 3
    for index, box in enumerate(from_bank(bank)):
        for shift in np.ndindex(*(2 * m + 1,) * 3):
            moved = np.roll(box, np.array(shift) - m, axis=(0, 1, 2))
            if np.array_equal(moved[inner], image[inner]):
                return index
    return -1


@pytest.fixture(scope="session")
def tiny_foundation(tmp_path_factory: pytest.TempPathFactory) -> TinyFoundation:
    """A foundation at the test box, trained for a few steps on six public phantom patients, which
    are also its anatomy bank: the tests check files, hashes, accounting and refusals, not image
    quality."""
    from coordinator.foundation.corpus import CorpusRequest, build_corpus
    from coordinator.foundation.training import TrainingSettings, train_foundation
    from shared.foundation.artefact import save_foundation
    from shared.foundation.files import foundation_sha256
    from shared.foundation.networks import FoundationSpec

    def build(root: Path) -> None:
        spec = FoundationSpec(TEST_BOX, TEST_SPACING_MM)
        corpus = build_corpus(CorpusRequest(spec, phantom_cases=6, phantom_seed=3, matrix=64))
        foundation = train_foundation(
            corpus, spec, TrainingSettings("tiny-test", autoencoder_epochs=2, denoiser_epochs=4, seed=1)
        )
        foundation.attach_anatomy(*corpus.anatomy_bank(len(corpus)))
        save_foundation(root / "tiny", foundation)

    folder = built_once(tmp_path_factory, "tiny-foundation", build) / "tiny"
    return TinyFoundation(folder, foundation_sha256(folder))
