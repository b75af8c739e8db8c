"""`coordinator model train|evaluate` and `coordinator phantom-dataset`: the shared diagnostic model.

Registered on the `coordinator` app by `coordinator.cli.main`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shared.cli_support import console, friendly_errors, status_bar
from shared.crop_box import CPU_BOX, CPU_SPACING_MM, box_text, parse_box

model_app = typer.Typer(
    name="model",
    help="Train the shared diagnostic model on a dataset folder, or score one on a labelled dataset.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
)


@model_app.command("train")
@friendly_errors
def train(
    dataset: Annotated[
        Path, typer.Argument(help="Dataset folder (pooled synthetic set or phantom dataset).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    task: Annotated[
        str,
        typer.Option(
            "--task",
            help="segment (default: lesion classes voxel by voxel, the case's class from them), "
            "classify (a whole-volume classifier) or both.",
        ),
    ] = "segment",
    epochs: Annotated[
        int, typer.Option("--epochs", min=1, help="Most epochs; early stopping may end sooner.")
    ] = 60,
    patience: Annotated[
        int, typer.Option("--patience", min=1, help="Epochs without improvement before stopping.")
    ] = 12,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    crop_share: Annotated[
        float,
        typer.Option(
            "--crop-share",
            min=0.0,
            max=1.0,
            help="segment: train the segmenter on crops of this share of the box along each axis "
            "(half around a lesion), scored on whole boxes; 1 trains on whole boxes.",
        ),
    ] = 2.0 / 3.0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc",
            min=1,
            help="Processes (DistributedDataParallel under torchrun: gloo on CPU, nccl with one GPU each).",
        ),
    ] = 1,
) -> None:
    """Train the diagnostic model: weights as safetensors and a metadata card in OUT."""
    import os

    from coordinator.diagnosis.distributed import leave_world, run_under_torchrun
    from coordinator.diagnosis.training import EpochReport, TrainingError, TrainOptions, train_model

    if task not in ("classify", "segment", "both"):
        raise TrainingError(f"--task must be classify, segment or both, not {task!r}")
    if out.exists() and any(out.iterdir()):
        raise TrainingError(f"{out} exists and is not empty; choose a new model folder (nothing was changed)")
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        argv = ["model", "train", str(dataset), "--out", str(out), "--task", task, "--epochs", str(epochs)]
        argv += ["--patience", str(patience), "--seed", str(seed), "--device", device]
        argv += ["--crop-share", str(crop_share)]
        raise typer.Exit(run_under_torchrun(nproc, argv))
    options = TrainOptions(
        task=task,  # type: ignore[arg-type]
        epochs=epochs,
        patience=patience,
        seed=seed,
        device=device,
        crop_share=None if crop_share >= 1.0 else crop_share,
    )
    if os.environ.get("RANK", "0") != "0":  # a second process of torchrun: process 0 reports
        train_model(dataset, out, options)
        leave_world()
        return
    with status_bar() as bar:
        job = bar.add_task("training", total=epochs, status="loading the dataset")

        def show(r: EpochReport) -> None:
            val = "n/a" if r.validation is None else f"{r.validation:.3f}"
            best = "n/a" if r.best is None else f"{r.best:.3f}"
            bar.update(job, completed=r.epoch, status=f"loss {r.loss:.3f}  validation {val}  best {best}")

        model = train_model(dataset, out, options, progress=show)
        leave_world()
    training, metrics = model.metadata["training"], model.metadata.get("metrics", {})
    console.print(
        f"Trained on {training['cases']} cases of {training['dataset_id']} (validation: "
        f"{training['validation_cases']}); {training['epochs_run']} epochs"
        f"{', ' + str(training['processes']) + ' processes' if training['processes'] > 1 else ''}"
        f"{', stopped early' if training['stopped_early'] else ''}.",
        highlight=False,
    )
    for name, value in metrics.items():
        console.print(
            f"  {name}: {value:.3f}" if isinstance(value, float) else f"  {name}: {value}", highlight=False
        )
    console.print(f"Model: {out} (metadata.json, safetensors weights)")


@model_app.command("evaluate")
@friendly_errors
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Model folder from `coordinator model train`.")],
    dataset: Annotated[Path, typer.Argument(help="Labelled dataset folder to score it on.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report here.")] = None,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Folder for roc.png and confusion.png.")
    ] = None,
) -> None:
    """Score a model: AUC per class and macro, accuracy, balanced accuracy, sensitivity, specificity,
    confusion matrix and Dice, each with a bootstrap 95% interval."""
    from coordinator.diagnosis.evaluation import evaluate_model, write_report

    with console.status("scoring"):
        report = evaluate_model(model_dir, dataset, plots=plots)
    _print_report(report)
    if json_out is not None:
        write_report(report, json_out)
        console.print(f"report: {json_out}")
    if plots is not None:
        console.print(f"plots: {plots}")


def _fmt(estimate: dict[str, Any] | None) -> str:
    """`0.812 [0.70, 0.90] n=24`, or `n/a: only 4 cases; 10 needed (n=4)`: never a bare 0.00."""
    if not estimate:
        return "-"
    cases = f" n={estimate['cases']}" if estimate.get("cases") is not None else ""
    if estimate.get("value") is None:
        return f"n/a: {estimate.get('note') or 'not estimated'}" + (f" ({cases.strip()})" if cases else "")
    low, high = estimate["ci95_low"], estimate["ci95_high"]
    interval = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
    return f"{estimate['value']:.3f}{interval}{cases}"


def _print_report(report: dict[str, object]) -> None:
    per_class = report["per_class"]
    assert isinstance(per_class, dict)
    table = Table(title=f"{report['dataset_id']}: {report['cases']} cases")
    for column in ("class", "cases", "AUC [95% CI]", "sensitivity", "specificity", "Dice"):
        table.add_column(column, overflow="fold")
    for name, row in per_class.items():
        table.add_row(
            name,
            str(row["cases"]),
            _fmt(row["auc"]),
            _fmt(row["sensitivity"]),
            _fmt(row["specificity"]),
            _fmt(row.get("dice")),
        )
    console.print(table)
    for key in ("macro_auc", "accuracy", "balanced_accuracy"):
        console.print(f"{key.replace('_', ' ')}: {_fmt(report[key])}", highlight=False)  # type: ignore[arg-type]
    console.print(
        "confusion (rows true, columns predicted): " + json.dumps(report["confusion"]), highlight=False
    )


@friendly_errors
def phantom_dataset(
    out: Annotated[Path, typer.Argument(help="New dataset folder.")],
    cases: Annotated[
        int, typer.Option("--cases", min=6, help="Phantom patients per profile (balanced classes).")
    ],
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same patients.")] = 0,
    profile: Annotated[
        list[str] | None,
        typer.Option("--profile", help="Scanner profile; repeat for several. Default: site_a."),
    ] = None,
    box: Annotated[str, typer.Option("--box", help="The box, x,y,z voxels (multiples of 8).")] = box_text(
        CPU_BOX
    ).replace("x", ","),
    spacing_mm: Annotated[float, typer.Option("--spacing-mm")] = CPU_SPACING_MM,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Worker processes.")] = 1,
) -> None:
    """Write phantom patients, preprocessed exactly as a site preprocesses its CT, as a dataset folder.

    For phantom data only: real patient data never reaches the coordinator.
    """
    from coordinator.diagnosis.phantom_dataset import PhantomDatasetRequest, write_phantom_dataset

    profiles = tuple(profile or ["site_a"])
    request = PhantomDatasetRequest(
        out=out,
        cases=cases,
        seed=seed,
        profiles=profiles,
        box=parse_box(box),
        spacing_mm=spacing_mm,
        jobs=jobs,
    )
    with status_bar() as bar:
        job = bar.add_task("phantom patients", total=cases * len(profiles), status="")
        write_phantom_dataset(request, lambda message: bar.update(job, advance=1, status=message))
    console.print(f"Wrote {cases * len(profiles)} phantom cases ({', '.join(profiles)}) to {out}.")
