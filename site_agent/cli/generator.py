"""`site-agent train`, `sample`, `export` and `budget`: the generator and the privacy budget.

Registered on the `site-agent` app by `site_agent.cli.main`; kept apart so each file holds one idea.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shared.cli_support import console, friendly_errors, status_bar
from site_agent.cli.options import ConfigOption
from site_agent.config import SiteSettings, load_site_settings


def _eps(value: float) -> str:
    return "infinity (no DP)" if math.isinf(value) else f"{value:.3f}"


@friendly_errors
def train(
    config: ConfigOption = None,
    epsilon: Annotated[
        float,
        typer.Option(
            "--epsilon",
            help="Privacy budget to spend on this generator (at the site's delta). 'inf' trains without "
            "DP, for benchmarks only: its samples cannot be exported unless site.toml allows it.",
        ),
    ] = 1.0,
    epochs: Annotated[
        float | None, typer.Option("--epochs", help="Expected passes over the patients. Default: site.toml.")
    ] = None,
    round_id: Annotated[str, typer.Option("--round", help="Round this training is for.")] = "local",
    abandon: Annotated[
        bool, typer.Option("--abandon", help="Give up an unfinished run (its spend stays charged).")
    ] = False,
) -> None:
    """Train the synthetic-data generator on this site's labelled training cases, with DP-SGD.

    The planned spend is checked against the site's cap and charged to the privacy ledger before
    the first step. If training is interrupted, run the same command again: it resumes from the
    last checkpoint and charges nothing twice. Held-out and unlabelled cases are never used.
    """
    from site_agent.generator.backend import StepReport
    from site_agent.generator.training_run import train_generator

    settings = load_site_settings(config)
    with status_bar() as bar:
        task = bar.add_task("training", total=None, status="planning")

        def show(report: StepReport, spent: float) -> None:
            # Each backend reports its own figures (dpgan3d: d and g losses; ldm3d: denoise).
            figures = "  ".join(f"{name} {value:.3f}" for name, value in report.losses.items())
            status = f"epsilon so far {_eps(spent)}  {figures}"
            bar.update(task, total=report.steps, completed=report.step, status=status)

        result = train_generator(
            settings, epsilon=epsilon, epochs=epochs, round_id=round_id, abandon=abandon, progress=show
        )
    p = result.privacy
    folder = settings.paths.models / result.run_id
    console.print(
        f"Trained generator {result.generator.backend} (run {result.run_id}"
        f"{', resumed' if result.resumed else ''}) on {result.patients} patients."
    )
    console.print(
        f"Spent epsilon {_eps(p.epsilon)} at delta {p.delta:.1e} ({p.accountant}): noise multiplier "
        f"{p.noise_multiplier:.3f}, sample rate {p.sample_rate:.3f}, {p.steps} steps, clipping norm "
        f"{p.max_grad_norm:g}.",
        highlight=False,
    )
    console.print(f"Review before exporting (stays on site): {folder / 'review'}")
    _print_budget(settings)


@friendly_errors
def sample(
    out: Annotated[Path, typer.Argument(help="New folder for the sampled set (site-only review).")],
    config: ConfigOption = None,
    per_class: Annotated[int, typer.Option("--per-class", help="Samples of each class.")] = 8,
    run_id: Annotated[str | None, typer.Option("--run", help="Training run. Default: the latest.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Sample a synthetic set for your own review, and run the memorisation audit on it.

    Nothing is released: the set, and the audit report written beside it as OUT.audit.json (it
    describes distances to patients: keep it on site), stay where you put them. Use
    `site-agent export` to release a set.
    """
    from site_agent.synthetic.export import AUDIT_FILE, sample_set

    settings = load_site_settings(config)
    with console.status("sampling and auditing"):
        result = sample_set(settings, out, per_class=per_class, run_id=run_id, seed=seed)
    report = out.with_name(f"{out.name}.{AUDIT_FILE}")
    report.write_text(json.dumps(result.audit.to_dict(), indent=2) + "\n")
    console.print(f"Wrote {result.samples} samples of run {result.run.run_id} to {out}.")
    verdict = "passed" if result.audit.passed else "WOULD BLOCK EXPORT"
    console.print(
        f"Memorisation audit {verdict}: {result.audit.reason}. Details: {report}",
        style=None if result.audit.passed else "bold red",
    )


@friendly_errors
def export(
    out: Annotated[Path, typer.Argument(help="New folder to write the released synthetic set to.")],
    config: ConfigOption = None,
    per_class: Annotated[int, typer.Option("--per-class", help="Samples of each class.")] = 8,
    run_id: Annotated[str | None, typer.Option("--run", help="Training run. Default: the latest.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Release a synthetic set: sample, audit, keep a copy of exactly what leaves, record it in the ledger.

    Sampling from a DP generator costs no further privacy. If the memorisation audit fires, the
    export is refused as a whole and the set stays on site for your review.
    """
    from site_agent.synthetic.export import export_set

    settings = load_site_settings(config)
    with console.status("sampling, auditing and exporting"):
        result = export_set(settings, out, per_class=per_class, run_id=run_id, seed=seed)
    p = result.run.privacy
    console.print(
        f"Exported {result.samples} synthetic volumes to {out} (epsilon {_eps(p.epsilon)} at delta "
        f"{p.delta:.1e}, stated in card.json). Audit: {result.audit.reason}.",
        highlight=False,
    )


@friendly_errors
def budget(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show this site's privacy budget: spent (composed over every run), cap and remaining."""
    settings = load_site_settings(config)
    if as_json:
        from site_agent.privacy.budget import current_spend

        spend = current_spend(settings)
        data = {
            "site_id": settings.site_id,
            "epsilon_spent": None if math.isinf(spend.epsilon) else spend.epsilon,
            "non_private_releases": spend.non_private_releases,
            "epsilon_cap": spend.cap,
            "epsilon_remaining": spend.remaining,
            "delta": spend.delta,
            "accountant": spend.accountant,
            "runs": spend.runs,
            "releases": spend.releases,
        }
        console.print_json(json.dumps(data))
        return
    _print_budget(settings, detailed=True)


def _print_budget(settings: SiteSettings, *, detailed: bool = False) -> None:
    from site_agent.privacy.budget import current_spend
    from site_agent.privacy.ledger import Ledger

    spend = current_spend(settings)
    if detailed:
        table = Table(title=f"Privacy ledger of site {settings.site_id} ({settings.paths.ledger})")
        for column in ("run", "round", "state", "epsilon", "noise", "sample rate", "steps", "releases"):
            table.add_column(column, overflow="fold")
        for run in Ledger(settings.paths.ledger).runs().values():
            epsilon = run.epsilon if run.epsilon is not None else run.planned_epsilon
            table.add_row(
                run.run_id,
                run.round_id,
                run.state,
                _eps(epsilon),
                f"{run.noise_multiplier:.3f}" if run.private else "none",
                f"{run.sample_rate:.3f}",
                str(run.charged_steps),
                str(len(run.releases)),
            )
        console.print(table)
    console.print(
        f"Budget: spent epsilon {_eps(spend.epsilon)} of cap {spend.cap:g}, remaining {spend.remaining:.3f} "
        f"(composed by {spend.accountant} at delta {spend.delta:.0e} over {spend.runs} runs).",
        highlight=False,
    )
