"""bench.report renders whatever results exist, and never drops one it does not know."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report import render

ENV = {"when": "2026-12-01T00:00:00+00:00", "cpus": 2, "platform": "Linux", "fedsynth": "0.1.0"}


def _write(folder: Path, name: str, payload: dict[str, object]) -> None:
    (folder / f"{name}.json").write_text(json.dumps({"benchmark": name, "environment": ENV, **payload}))


def test_known_unknown_and_outdated_results_all_appear(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "calibration",
        {
            "training_cases": 360,
            "external_cases": 120,
            "external_macro_auc": {"value": 0.875, "ci95_low": 0.84, "ci95_high": 0.91},
            "band": [0.75, 0.95],
            "verdict": "in band",
        },
    )
    _write(tmp_path, "newthing", {"speed": 12.5, "nested": {"skipped": 1}})
    _write(tmp_path, "download", {"what": "old layout without results"})
    page = render(tmp_path)
    assert "## Phantom difficulty" in page
    assert "macro AUC 0.875 [0.840, 0.910]" in page
    assert "## newthing" in page and "- speed: 12.5" in page
    assert "## Downloads: coordinator versus nginx" in page and "not the current one" in page
    assert page.index("## Phantom difficulty") < page.index("## newthing")
    assert "measured 2026-12-01T00:00:00+00:00 on 2 cores" in page
