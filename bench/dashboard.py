"""The dashboard's pages in a real browser: how long each takes to load, and a screenshot of each
for the README's guides.

Run it against a federation that has run a round, for example the demo kept up with `--serve`:

    scripts/demo --serve        # prints the dashboard's URL and the demo's two tokens
    python -m bench.dashboard --url URL --operator-token OP --researcher-token RES

Each page is loaded `--loads` times in chromium (the time to the load event, the page's images
included); the median goes to bench/results/dashboard.json, the screenshots to
bench/results/dashboard/.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from bench.common import RESULTS, write_result
from tests.browser import accessibility_violations, find_chromium, sign_in

SHOTS = RESULTS / "dashboard"


def _load_ms(page: Page, url: str, loads: int) -> float:
    times = []
    for _ in range(loads):
        started = time.perf_counter()
        page.goto(url, wait_until="load")
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def _pages(role: str, round_id: str | None, dataset: str | None) -> list[tuple[str, str]]:
    if role == "operator":
        found = [("rounds", "/ui/rounds"), ("sites", "/ui/sites"), ("publishing", "/ui/publishing")]
        found.append(("audit", "/ui/audit"))
        if round_id:
            found.append(("round-report", f"/ui/rounds/{round_id}"))
        return found
    found = [("catalogue", "/ui/catalogue")]
    if dataset:
        found.append(("dataset", f"/ui/catalogue/datasets/{dataset}"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--operator-token", required=True)
    parser.add_argument("--researcher-token", required=True)
    parser.add_argument("--round", default="demo-round-1", help="the round whose report to load")
    parser.add_argument("--dataset", default="pooled/1", help="a published set, as DATASET/VERSION")
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    SHOTS.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    executable = find_chromium()
    if executable is None:
        raise SystemExit("dashboard: chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        for role, token in (("operator", args.operator_token), ("researcher", args.researcher_token)):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            sign_in(page, args.url, token)
            for name, route in _pages(role, args.round, args.dataset):
                median_ms = _load_ms(page, args.url + route, args.loads)
                shot = SHOTS / f"{role}-{name}.png"
                page.screenshot(path=shot, full_page=True)
                violations = accessibility_violations(page)
                rows.append(
                    {
                        "role": role,
                        "page": route,
                        "median_load_ms": round(median_ms, 1),
                        "loads": args.loads,
                        "accessibility_violations": len(violations),
                        "screenshot": str(Path("dashboard") / shot.name),
                    }
                )
                print(f"{role:10} {route:40} {median_ms:7.1f} ms  {len(violations)} violations  {shot}")
            page.close()
        browser.close()
    written = write_result("dashboard", {"pages": rows, "url_kind": "loopback", "browser": "chromium"})
    print(f"dashboard: wrote {written}")


if __name__ == "__main__":
    main()
