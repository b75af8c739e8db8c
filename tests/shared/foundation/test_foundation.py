"""The public foundation: its corpus holds no class, it trains, saves, loads, checks and draws."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from coordinator.cli.main import app
from coordinator.foundation.corpus import CorpusError, CorpusRequest, PublicCorpus, build_corpus
from shared.classes import DEFAULT_CLASSES
from shared.foundation.anatomy import draw_anatomy, from_bank, to_bank
from shared.foundation.artefact import load_foundation
from shared.foundation.files import ANATOMY_FILE, FOUNDATION_FILES, FoundationError, foundation_sha256
from shared.foundation.networks import FoundationSpec
from shared.foundation.sampling import draw
from shared.phantom import PROFILES, PhantomError, PhantomRequest, generate_study, write_phantom
from shared.phantom.lesions import PUBLIC_FINDINGS, SIZE_RANGE_MM
from shared.phantom.nifti_io import ras_affine
from shared.phantom.profiles import PUBLIC_PROFILE
from tests.conftest import TEST_BOX, TEST_SPACING_MM, TinyFoundation, bank_index, real_ct_dir

SPEC = FoundationSpec(TEST_BOX, TEST_SPACING_MM)


@pytest.fixture(scope="module")
def corpus() -> PublicCorpus:
    return build_corpus(CorpusRequest(SPEC, phantom_cases=6, phantom_seed=3, matrix=64))


@pytest.fixture(scope="module")
def saved(tiny_foundation: TinyFoundation) -> tuple[Path, str]:
    return tiny_foundation.folder, tiny_foundation.sha256


def test_the_public_profile_has_its_own_scanner_and_only_small_lung_lesions() -> None:
    public = PROFILES[PUBLIC_PROFILE]
    for other in (p for p in PROFILES.values() if p.name != PUBLIC_PROFILE):
        assert (public.manufacturer, public.model, public.kernel) != (
            other.manufacturer,
            other.model,
            other.kernel,
        )
        assert public.manufacturer != other.manufacturer
    smallest_mass = min(low for low, _ in SIZE_RANGE_MM.values())
    nodules = 0
    for index in range(1, 9):
        study = generate_study(public, PUBLIC_FINDINGS, seed=5, index=index, matrix=64)
        parts, count = ndimage.label(study.mask)
        nodules += count
        spacing = np.array([study.grid.spacing[2], study.grid.spacing[1], study.grid.spacing[0]])
        for part in range(1, count + 1):
            where = np.argwhere(parts == part)
            extent_mm = ((where.max(0) - where.min(0)) * spacing).max()
            assert extent_mm < smallest_mass  # a nodule, never a mediastinal mass of a class
            centre_x_mm = study.grid.origin[0] + where[:, 2].mean() * study.grid.spacing[0]
            assert abs(centre_x_mm) > 30  # in a lung, beside the mediastinum
    assert nodules >= 3  # the masks teach something


def test_a_public_phantom_is_never_written_with_labels(tmp_path: Path) -> None:
    with pytest.raises(PhantomError, match=r"public.*unlabelled.*foundation train"):
        write_phantom(PhantomRequest(out=tmp_path / "p", cases=2, profile=PUBLIC_PROFILE, seed=0, matrix=48))
    assert not (tmp_path / "p").exists()


def test_the_corpus_is_boxes_of_image_and_mask_made_by_the_site_preprocessing(corpus: PublicCorpus) -> None:
    assert corpus.volumes.shape == (6, 2, *TEST_BOX)
    assert corpus.volumes.min() >= -1.0 and corpus.volumes.max() <= 1.0
    assert set(np.unique(corpus.volumes[:, 1])) <= {-1.0, 1.0}
    assert (corpus.volumes[:, 1] > 0).any()
    (source,) = corpus.sources
    assert (source.kind, source.cases, source.lesion_masks) == ("phantom-public", 6, True)
    # A chest centred as a site centres it (x, y): dark lungs either side, the mediastinum
    # between them, the bright spine behind it.
    middle = corpus.volumes[:, 0, :, :, TEST_BOX[2] // 2].mean(0)
    assert middle[6:10, 8:20].mean() < -0.9 and middle[22:26, 8:20].mean() < -0.9
    assert middle[14:20, 14:22].mean() > -0.5 and middle[14:20, 2:8].mean() > 0.4


def test_nifti_ct_is_taken_and_what_is_not_ct_is_left_out_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "public-nifti"
    folder.mkdir()
    study = generate_study(PROFILES[PUBLIC_PROFILE], PUBLIC_FINDINGS, seed=9, index=1, matrix=64)
    hu = np.ascontiguousarray(study.hu.transpose(2, 1, 0)).astype(np.int16)
    nib.save(nib.Nifti1Image(hu, ras_affine(study.grid)), folder / "chest.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 20), np.float32), np.eye(4)), folder / "blank.nii")
    (folder / "notes.txt").write_text("not an image")
    corpus = build_corpus(CorpusRequest(SPEC, nifti=(folder,), nifti_licence="CC0-1.0"))
    assert corpus.volumes.shape == (1, 2, *TEST_BOX)
    assert (corpus.volumes[0, 1] == -1).all()  # NIfTI CT brings no mask
    assert [s.kind for s in corpus.sources] == ["nifti"] and corpus.sources[0].lesion_masks is False
    assert len(corpus.left_out) == 1 and corpus.left_out[0].startswith("blank.nii: ")
    with pytest.raises(CorpusError, match="empty"):
        build_corpus(CorpusRequest(SPEC))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"--nifti .*empty: no \.nii"):
        build_corpus(CorpusRequest(SPEC, nifti=(tmp_path / "empty",)))


def test_public_dicom_is_read_by_the_site_reader_and_a_series_that_fails_its_checks_is_named(
    tmp_path: Path,
) -> None:
    # The real public collection (CC BY 4.0): one CT series, beside files that are not DICOM.
    series = real_ct_dir()
    corpus = build_corpus(CorpusRequest(SPEC, dicom=(series.parent,), dicom_licence="CC BY 4.0"))
    assert corpus.volumes.shape == (1, 2, *TEST_BOX) and corpus.left_out == []
    assert (corpus.volumes[0, 1] == -1).all()  # public DICOM CT brings no mask
    (source,) = corpus.sources
    assert (source.kind, source.cases, source.licence, source.lesion_masks) == (
        "dicom",
        1,
        "CC BY 4.0",
        False,
    )
    image = corpus.volumes[0, 0]
    assert image.min() == -1.0 and image.max() > 0.5  # air around the body, bone in the box
    # Ten slices of it: the site's series checks refuse it, and the reason names the folder, not a UID.
    short = tmp_path / "short"
    short.mkdir()
    for path in sorted(series.glob("*.dcm"))[:10]:
        (short / path.name).write_bytes(path.read_bytes())
    with pytest.raises(
        CorpusError, match=r"no public volume could be used: short series 1: too-few-slices: 10 slices"
    ):
        build_corpus(CorpusRequest(SPEC, dicom=(short,)))
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("not an image")
    with pytest.raises(CorpusError, match=r"--dicom .*text: no DICOM series in it"):
        build_corpus(CorpusRequest(SPEC, dicom=(tmp_path / "text",)))


def test_a_saved_foundation_loads_to_the_same_networks_and_its_card_tells_what_it_learnt(
    saved: tuple[Path, str], corpus: PublicCorpus
) -> None:
    folder, sha256 = saved
    assert {p.name for p in folder.iterdir()} == FOUNDATION_FILES | {ANATOMY_FILE}
    assert foundation_sha256(folder) == sha256
    card = json.loads((folder / "foundation.json").read_text())
    assert card["class_labels"] is False and card["training"]["differential_privacy"] is False
    assert card["corpus"][0]["kind"] == "phantom-public" and card["corpus"][0]["cases"] == 6
    assert card["training"]["autoencoder"]["steps"] == 3 and card["training"]["denoiser"]["steps"] == 4
    loaded = load_foundation(folder, sha256=sha256)
    assert loaded.spec == SPEC and loaded.spec.public_class == len(DEFAULT_CLASSES)
    rows = np.array([loaded.spec.public_class, 0], dtype=np.int64)
    first = draw(loaded.spec, loaded.autoencoder, loaded.denoiser, loaded.scale_factor, rows, seed=4, steps=3)
    again = draw(loaded.spec, loaded.autoencoder, loaded.denoiser, loaded.scale_factor, rows, seed=4, steps=3)
    other = draw(loaded.spec, loaded.autoencoder, loaded.denoiser, loaded.scale_factor, rows, seed=5, steps=3)
    assert first.images.shape == first.masks.shape == (2, *TEST_BOX)
    assert first.images.min() >= -1 and first.images.max() <= 1 and set(np.unique(first.masks)) <= {0, 1}
    assert np.array_equal(first.images, again.images) and not np.array_equal(first.images, other.images)
    # Its anatomy bank is the corpus's public boxes (the same request as the fixture's), images only.
    assert loaded.anatomy is not None and np.array_equal(loaded.anatomy, to_bank(corpus.volumes[:, 0]))
    assert [(s["kind"], s["cases"], s["lesion_masks"]) for s in card["anatomy_sources"]] == [
        ("phantom-public", 6, False)
    ]


def test_drawn_anatomy_is_every_bank_box_once_before_any_twice_moved_a_little(corpus: PublicCorpus) -> None:
    bank = to_bank(corpus.volumes[:, 0])
    assert np.abs(from_bank(bank) - corpus.volumes[:, 0]).max() <= 1.0 / 255.0 + 1e-6
    drawn = draw_anatomy(bank, 2 * len(bank), np.random.default_rng(0))
    assert drawn.shape == (2 * len(bank), *TEST_BOX) and drawn.min() >= -1 and drawn.max() <= 1
    first, second = (
        [bank_index(d, bank) for d in drawn[: len(bank)]],
        [bank_index(d, bank) for d in drawn[len(bank) :]],
    )
    assert sorted(first) == sorted(second) == list(range(len(bank)))


def test_a_foundation_that_does_not_match_its_card_or_the_hash_asked_is_refused(
    saved: tuple[Path, str], tmp_path: Path
) -> None:
    folder, _ = saved
    with pytest.raises(FoundationError, match=f"not {'0' * 64} as asked"):
        load_foundation(folder, sha256="0" * 64)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in FOUNDATION_FILES:
        (copy / name).write_bytes((folder / name).read_bytes())
    (copy / ANATOMY_FILE).write_bytes((folder / ANATOMY_FILE).read_bytes())
    bank = bytearray((copy / ANATOMY_FILE).read_bytes())
    bank[-3] ^= 0xFF
    (copy / ANATOMY_FILE).write_bytes(bytes(bank))
    with pytest.raises(FoundationError, match=r"anatomy\.safetensors does not match its card"):
        load_foundation(copy)
    (copy / ANATOMY_FILE).write_bytes((folder / ANATOMY_FILE).read_bytes())
    weights = bytearray((copy / "denoiser.safetensors").read_bytes())
    weights[-5] ^= 0xFF
    (copy / "denoiser.safetensors").write_bytes(bytes(weights))
    with pytest.raises(FoundationError, match=r"denoiser\.safetensors does not match its card"):
        load_foundation(copy)
    (copy / "autoencoder.safetensors").unlink()
    with pytest.raises(FoundationError, match=r"autoencoder\.safetensors is missing"):
        load_foundation(copy)
    with pytest.raises(FoundationError, match="not a foundation"):
        load_foundation(tmp_path)


def test_the_cli_shows_a_foundation_and_refuses_to_overwrite_one(
    saved: tuple[Path, str], tmp_path: Path
) -> None:
    folder, _ = saved
    runner = CliRunner()
    png = tmp_path / "samples.png"
    recon = tmp_path / "reconstructions.png"
    shown = runner.invoke(
        app,
        [
            *("foundation", "show", str(folder), "--out", str(png), "--samples", "2", "--steps", "2"),
            *("--reconstructions", str(recon)),
        ],
    )
    assert shown.exit_code == 0, shown.output
    for image in (png, recon):
        assert image.stat().st_size > 5000 and image.read_bytes()[:4] == b"\x89PNG"
    refused = runner.invoke(
        app, ["foundation", "train", str(folder), "--id", "again", "--phantom-cases", "2"]
    )
    assert refused.exit_code != 0 and "not empty" in refused.output
    assert foundation_sha256(folder) == saved[1]

    # A new foundation from the same networks with a bank of other public boxes; the source is kept.
    banked = tmp_path / "banked"
    added = runner.invoke(
        app,
        [
            *("foundation", "add-anatomy", str(folder), str(banked), "--id", "tiny-banked"),
            *("--phantom-cases", "1", "--seed", "9"),
        ],
    )
    assert added.exit_code == 0, added.output
    loaded = load_foundation(banked)
    assert loaded.card.foundation_id == "tiny-banked" and loaded.anatomy is not None
    assert loaded.anatomy.shape == (1, *TEST_BOX) and loaded.card.anatomy_sources[0].cases == 1
    assert loaded.card.weights_sha256["denoiser"] == load_foundation(folder).card.weights_sha256["denoiser"]
    assert foundation_sha256(banked) != saved[1] and foundation_sha256(folder) == saved[1]
    again = runner.invoke(
        app, ["foundation", "add-anatomy", str(folder), str(banked), "--id", "x", "--phantom-cases", "1"]
    )
    assert again.exit_code != 0 and "not empty" in again.output
