"""`coordinator foundation train|add-anatomy|show|add|list`: the public foundation model.

Registered on the `coordinator` app by `coordinator.cli.main`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from coordinator.cli.options import ConfigOption
from shared.cli_support import console, friendly_errors
from shared.crop_box import CPU_BOX, CPU_SPACING_MM, box_text, parse_box

DEFAULT_ANATOMY_CASES = 32  # 4.7 MB at the CPU box

# The public CT a command reads (train's corpus, add-anatomy's bank).
PhantomCases = Annotated[
    int,
    typer.Option(
        "--phantom-cases",
        min=0,
        help="Phantom patients of the public profile (lung nodules, no mediastinal mass, no label).",
    ),
]
NiftiFolders = Annotated[
    list[Path] | None,
    typer.Option("--nifti", help="Folder of public chest CT as NIfTI in HU; repeat for several."),
]
NiftiLicence = Annotated[
    str, typer.Option("--nifti-licence", help="Licence of the NIfTI collections, for the card.")
]
DicomFolders = Annotated[
    list[Path] | None,
    typer.Option(
        "--dicom",
        help="Folder of public chest CT as DICOM (every CT series in it that passes a site's series "
        "checks); repeat for several.",
    ),
]
DicomLicence = Annotated[
    str, typer.Option("--dicom-licence", help="Licence of the DICOM collections, for the card.")
]

foundation_app = typer.Typer(
    name="foundation",
    help=(
        "The foundation model: a 3D latent diffusion model of chest CT (image and lesion mask), "
        "trained here on public CT only, without DP, which every hospital starts its DP fine-tune from."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
)


@foundation_app.command("train")
@friendly_errors
def train(
    out: Annotated[Path, typer.Argument(help="New foundation folder.")],
    foundation_id: Annotated[str, typer.Option("--id", help="The foundation's name in rounds and cards.")],
    phantom_cases: PhantomCases = 0,
    nifti: NiftiFolders = None,
    nifti_licence: NiftiLicence = "see the collection's licence",
    dicom: DicomFolders = None,
    dicom_licence: DicomLicence = "see the collection's licence",
    box: Annotated[
        str, typer.Option("--box", help="The round's box, x,y,z voxels (multiples of 8).")
    ] = box_text(CPU_BOX).replace("x", ","),
    spacing_mm: Annotated[float, typer.Option("--spacing-mm", help="The round's spacing.")] = CPU_SPACING_MM,
    autoencoder_epochs: Annotated[float, typer.Option("--autoencoder-epochs")] = 30.0,
    denoiser_epochs: Annotated[float, typer.Option("--denoiser-epochs")] = 400.0,
    autoencoder_learning_rate: Annotated[float, typer.Option("--autoencoder-learning-rate", min=0.0)] = 2e-3,
    denoiser_learning_rate: Annotated[float, typer.Option("--denoiser-learning-rate", min=0.0)] = 1e-3,
    mixed_precision: Annotated[
        bool,
        typer.Option(
            help="The autoencoder under bfloat16 autocast (about twice as fast on CPUs with AVX-512 BF16)."
        ),
    ] = True,
    seed: Annotated[int, typer.Option("--seed", help="Phantom patients and training.")] = 0,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Processes drawing phantom patients.")] = 1,
    anatomy_cases: Annotated[
        int | None,
        typer.Option(
            "--anatomy-cases",
            min=0,
            help="Corpus boxes kept as the foundation's public anatomy bank, which lesionstats paints "
            "lesions into (default: 32, or the whole corpus if smaller; 0: no bank).",
        ),
    ] = None,
) -> None:
    """Train a foundation on public CT, through exactly the site preprocessing, and write it to OUT
    (safetensors weights and a card with its corpus, training and hashes)."""
    from coordinator.foundation.corpus import CorpusRequest, build_corpus
    from coordinator.foundation.training import TrainingSettings, train_foundation
    from shared.foundation.artefact import save_foundation
    from shared.foundation.networks import FoundationSpec

    _refuse_non_empty(out)
    spec = FoundationSpec(parse_box(box), spacing_mm)
    request = CorpusRequest(
        spec,
        phantom_cases=phantom_cases,
        phantom_seed=seed,
        nifti=tuple(nifti or ()),
        nifti_licence=nifti_licence,
        dicom=tuple(dicom or ()),
        dicom_licence=dicom_licence,
        jobs=jobs,
    )
    settings = TrainingSettings(
        foundation_id=foundation_id,
        autoencoder_epochs=autoencoder_epochs,
        denoiser_epochs=denoiser_epochs,
        autoencoder_learning_rate=autoencoder_learning_rate,
        denoiser_learning_rate=denoiser_learning_rate,
        mixed_precision=mixed_precision,
        seed=seed,
    )
    say = lambda message: console.print(message, highlight=False)  # noqa: E731
    corpus = build_corpus(request, say)
    say(f"public corpus: {len(corpus)} boxes of {box_text(spec.box)} at {spec.spacing_mm:g} mm")
    cases = min(DEFAULT_ANATOMY_CASES, len(corpus)) if anatomy_cases is None else anatomy_cases
    bank = corpus.anatomy_bank(cases) if cases else None  # checked before the long training
    foundation = train_foundation(corpus, spec, settings, say)
    if bank is not None:
        foundation.attach_anatomy(*bank)
    sha256 = save_foundation(out, foundation)
    console.print(f"Foundation {foundation_id}: {out}\n  sha256 {sha256}", highlight=False)
    console.print(
        f"Look at what it draws: coordinator foundation show {out} --out samples.png", highlight=False
    )


@foundation_app.command("add-anatomy")
@friendly_errors
def add_anatomy(
    source: Annotated[Path, typer.Argument(help="Foundation folder to start from (left unchanged).")],
    out: Annotated[Path, typer.Argument(help="New foundation folder.")],
    foundation_id: Annotated[str, typer.Option("--id", help="The new foundation's name.")],
    phantom_cases: PhantomCases = 0,
    nifti: NiftiFolders = None,
    nifti_licence: NiftiLicence = "see the collection's licence",
    dicom: DicomFolders = None,
    dicom_licence: DicomLicence = "see the collection's licence",
    seed: Annotated[int, typer.Option("--seed", help="Phantom patients.")] = 0,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Processes drawing phantom patients.")] = 1,
) -> None:
    """Write a new foundation: SOURCE's networks with a public anatomy bank of every box of the given
    public CT (cut by the site preprocessing), under a new id and hash. Nothing is retrained."""
    from coordinator.foundation.corpus import CorpusRequest, build_corpus
    from shared.foundation.artefact import load_foundation, save_foundation

    _refuse_non_empty(out)
    foundation = load_foundation(source)
    request = CorpusRequest(
        foundation.spec,
        phantom_cases=phantom_cases,
        phantom_seed=seed,
        nifti=tuple(nifti or ()),
        nifti_licence=nifti_licence,
        dicom=tuple(dicom or ()),
        dicom_licence=dicom_licence,
        jobs=jobs,
    )
    say = lambda message: console.print(message, highlight=False)  # noqa: E731
    corpus = build_corpus(request, say)
    foundation.attach_anatomy(*corpus.anatomy_bank(len(corpus)))
    foundation.card = foundation.card.model_copy(
        update={
            "foundation_id": foundation_id,
            "description": f"{foundation.card.description}, public anatomy bank of {len(corpus)} boxes",
            "created_at": datetime.now(UTC),
        }
    )
    sha256 = save_foundation(out, foundation)
    console.print(
        f"Foundation {foundation_id}: {out} ({len(corpus)} public boxes of anatomy)\n  sha256 {sha256}",
        highlight=False,
    )


def _refuse_non_empty(out: Path) -> None:
    from shared.errors import FedsynthError

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FedsynthError(
            f"{out} exists and is not empty; choose a new foundation folder (nothing was changed)"
        )


@foundation_app.command("show")
@friendly_errors
def show(
    folder: Annotated[Path, typer.Argument(help="Foundation folder.")],
    out: Annotated[Path, typer.Option("--out", help="PNG to write.")],
    samples: Annotated[int, typer.Option("--samples", min=1, max=32)] = 8,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    steps: Annotated[int, typer.Option("--steps", min=2, max=1000, help="DDIM steps.")] = 50,
    reconstructions: Annotated[
        Path | None,
        typer.Option(
            "--reconstructions",
            help="Also a PNG of fresh public phantom boxes (seed --seed + 1000, not the corpus's) above "
            "what the autoencoder makes of them: what its latents keep.",
        ),
    ] = None,
) -> None:
    """Draw boxes from the foundation (its public row: no class) and save them as a montage of
    axial and coronal slices, radiological convention."""
    import numpy as np

    from shared.foundation.artefact import load_foundation
    from shared.foundation.files import foundation_sha256
    from shared.foundation.montage import save_drawn_montage
    from shared.foundation.sampling import draw

    foundation = load_foundation(folder)
    with console.status(f"drawing {samples} boxes"):
        rows = np.full(samples, foundation.spec.public_class, dtype=np.int64)
        drawn = draw(
            foundation.spec,
            foundation.autoencoder,
            foundation.denoiser,
            foundation.scale_factor,
            rows,
            seed=seed,
            steps=steps,
        )
    title = (
        f"{foundation.card.foundation_id} ({foundation_sha256(folder)[:12]}): {samples} boxes drawn, no class"
    )
    save_drawn_montage(drawn.images, drawn.masks, title, out)
    console.print(f"montage: {out}")
    if reconstructions is not None:
        _save_reconstructions(foundation, samples, seed + 1000, reconstructions)
        console.print(f"reconstructions: {reconstructions}")


def _save_reconstructions(foundation: Any, count: int, seed: int, out: Path) -> None:
    import numpy as np
    import torch

    from coordinator.foundation.corpus import CorpusRequest, build_corpus
    from shared.foundation.montage import save_drawn_montage

    spec = foundation.spec
    with console.status(f"drawing {count} public phantom boxes and encoding them"):
        boxes = build_corpus(CorpusRequest(spec, phantom_cases=count, phantom_seed=seed)).volumes
        with torch.no_grad():
            decoded, _, _ = foundation.autoencoder(torch.from_numpy(boxes))
        decoded = decoded.clamp(-1, 1).numpy()
    images = np.concatenate([boxes[:, 0], decoded[:, 0]])
    masks = np.concatenate([boxes[:, 1] > 0, decoded[:, 1] > 0]).astype(np.uint8)
    title = f"{foundation.card.foundation_id}: public boxes (top) and autoencoder reconstructions (bottom)"
    save_drawn_montage(
        images, masks, title, out, row_names=["public boxes", "reconstructions"], per_row=count
    )


@foundation_app.command("add")
@friendly_errors
def add(
    folder: Annotated[Path, typer.Argument(help="Foundation folder (train's or add-anatomy's OUT).")],
    config: ConfigOption = None,
) -> None:
    """Add a foundation to this coordinator, checked file by file against its card, so that rounds
    can name it (`rounds launch --foundation ID`) and sites receive it."""
    from coordinator.config import load_coordinator_settings
    from coordinator.foundation.catalogue import add_foundation

    with console.status("checking the foundation and copying it in"):
        added = add_foundation(load_coordinator_settings(config), folder)
    box, spacing_mm = added.card.draws
    console.print(
        f"Foundation {added.foundation_id} ({box_text(box)} at {spacing_mm:g} mm): {added.folder}\n"
        f"  sha256 {added.sha256}",
        highlight=False,
    )


@foundation_app.command("list")
@friendly_errors
def list_(config: ConfigOption = None) -> None:
    """The foundations rounds can name: id, box, what public data taught it, and its sha256."""
    from rich.table import Table

    from coordinator.config import load_coordinator_settings
    from coordinator.foundation.catalogue import list_foundations

    table = Table(title="Foundations")
    for column in ("id", "box", "public corpus", "anatomy bank", "sha256", "origin"):
        table.add_column(column)
    for found in list_foundations(load_coordinator_settings(config)).values():
        box, spacing_mm = found.card.draws
        corpus = ", ".join(f"{s.cases} {s.kind}" for s in found.card.corpus)
        bank = sum(s.cases for s in found.card.anatomy_sources)
        table.add_row(
            found.foundation_id,
            f"{box_text(box)} at {spacing_mm:g} mm",
            corpus,
            str(bank) if bank else "none",
            found.sha256[:16],
            "shipped" if found.shipped else "added",
        )
    console.print(table)
