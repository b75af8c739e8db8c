"""`python -m bench.federation`: the end-to-end demo round, timed, with where the time goes.

Runs `coordinator demo` (phantom hospitals, SuperLink and SuperNodes on loopback with TLS and site
keys, one full round) `--repeats` times in a scratch folder and records the wall time of each run,
the round's phases (synthesis at the sites, pooling, model training, evaluation), the bytes each
site sent, and the goal from the federation issue: the whole demo under 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write_result

GOAL_S = 600.0


def one_demo(out: Path, sites: int) -> dict[str, Any]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "coordinator", "demo", "--out", str(out), "--sites", str(sites)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"the demo failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    report = json.loads((out / "report" / "round.json").read_text())
    sent = {}
    for site in report["sites"]:
        lines = (out / "sites" / site / "logs" / "egress" / "egress.jsonl").read_text().splitlines()
        sent[site] = {json.loads(line)["message_type"]: json.loads(line)["bytes"] for line in lines}
    return {
        "wall_s": round(wall, 1),
        "phases_s": report["phases"],
        "bytes_sent_by_site": sent,
        "macro_auc_by_site": {
            site: result["metrics"]["macro_auc"]
            for site, result in report["sites"].items()
            if result["metrics"]
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sites", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for n in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="fedsynth-bench-") as tmp:
            runs.append(one_demo(Path(tmp) / "demo", args.sites))
        print(
            f"run {n + 1}/{args.repeats}: {runs[-1]['wall_s']} s; phases {runs[-1]['phases_s']}", flush=True
        )
    median = statistics.median(r["wall_s"] for r in runs)
    path = write_result(
        "federation",
        {
            "what": f"`coordinator demo --sites {args.sites}`: set-up, phantom hospitals, one full round",
            "goal_s": GOAL_S,
            "median_wall_s": median,
            "within_goal": median < GOAL_S,
            "runs": runs,
        },
    )
    print(f"median {median:.0f} s (goal < {GOAL_S:.0f} s); wrote {path}")


if __name__ == "__main__":
    main()
