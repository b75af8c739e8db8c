"""A round's report as a terminal table, for `rounds launch`, `rounds show` and the demo."""

from __future__ import annotations

import math

from rich.table import Table

from coordinator.federation.rounds import RoundReport


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def round_table(report: RoundReport) -> Table:
    notes = {
        site: result.reason if result.synthesis != "answered" else result.evaluation_reason
        for site, result in report.sites.items()
    }
    table = Table(title=f"Round {report.round_id}: {report.state}")
    columns = ["site", "set", "epsilon", "budget", "held-out", "AUC", "accuracy"]
    if any(notes.values()):
        columns.append("why missing")
    for column in columns:
        table.add_column(column, overflow="fold")
    for site, result in sorted(report.sites.items()):
        metrics, budget = result.metrics, result.budget
        row = [
            site,
            f"{result.samples}" if result.synthesis == "answered" else result.synthesis,
            _num(result.privacy.epsilon) if result.privacy else "-",
            f"{_num(budget.spent)}/{_num(budget.cap, 0)}" if budget else "-",
            str(metrics.cases) if metrics else "-",
            metrics.macro_auc.text() if metrics else (result.evaluation or "-"),
            metrics.accuracy.text() if metrics else "-",
        ]
        if len(columns) > len(row):
            row.append(notes[site])
        table.add_row(*row)
    table.caption = (
        "set: synthetic volumes sent; epsilon: spent on them; budget: the site's total spent/cap; "
        "AUC (macro) and accuracy: the shared model on the site's held-out real cases, with a bootstrap "
        "95% interval and the cases behind it; n/a: too few cases to estimate"
    )
    return table
