"""`site-agent evaluate`: score a diagnostic model on this site's held-out real cases.

Registered on the `site-agent` app by `site_agent.cli.main`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shared.cli_support import console, friendly_errors
from site_agent.cli.options import ConfigOption
from site_agent.config import load_site_settings


@friendly_errors
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Model folder (metadata.json and safetensors weights).")],
    config: ConfigOption = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics reply here.")] = None,
) -> None:
    """Score a diagnostic model on this site's labelled held-out cases. Only metrics are shown or
    written: counts and rates, never a case, an image or a per-case score."""
    from site_agent.evaluation import evaluate_on_holdout

    settings = load_site_settings(config)
    with console.status("scoring the model on held-out cases"):
        reply = evaluate_on_holdout(settings, model_dir)
    table = Table(title=f"Model {reply.model_sha256[:12]} on {reply.cases} held-out cases of {reply.site_id}")
    dice = any(m.dice is not None for m in reply.per_class.values())
    for column in ("class", "cases", "AUC", "sensitivity", "specificity", *(["lesion Dice"] if dice else [])):
        table.add_column(column, overflow="fold")
    for name in reply.classes:
        m = reply.per_class[name]
        cells = [m.auc.text(), m.sensitivity.text(), m.specificity.text()]
        if dice:
            cells.append(m.dice.text() if m.dice is not None else "-")
        table.add_row(name, str(m.cases), *cells)
    table.caption = "value [bootstrap 95% interval] n=cases it rests on; n/a: too few cases to estimate"
    console.print(table)
    console.print(
        f"macro AUC {reply.macro_auc.text()}\naccuracy {reply.accuracy.text()}\n"
        f"balanced accuracy {reply.balanced_accuracy.text()}",
        highlight=False,
    )
    if json_out is not None:
        reply.write(json_out)
        console.print(f"metrics: {json_out}")
