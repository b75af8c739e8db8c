"""The container images: build them from Debian packages and the offline bundle, smoke-test them,
and record how long each step took and how big the images are.

    python -m bench.containers          (as root, with podman, mmdebstrap and runc installed)

Writes bench/results/containers.json. The base image is rebuilt from the Debian mirror (it is
removed first), so the figure is a build from nothing but the mirror, PyPI's wheels and this tree.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import write_result

HERE = Path(__file__).resolve().parent.parent / "deploy" / "containers"


def _timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done


def main() -> None:
    subprocess.run(
        ["podman", "rmi", "-f", "localhost/fedsynth-base:bookworm"], capture_output=True, check=False
    )
    build_s, build = _timed([str(HERE / "build")])
    if build.returncode != 0:
        raise SystemExit(f"containers: the build failed:\n{build.stdout}\n{build.stderr}")
    smoke_s, smoke = _timed([str(HERE / "smoke")])
    images: dict[str, Any] = {}
    for name in ("fedsynth-base:bookworm", "fedsynth-site-agent:latest", "fedsynth-coordinator:latest"):
        inspected = subprocess.run(
            ["podman", "image", "inspect", f"localhost/{name}"], capture_output=True, text=True, check=True
        )
        images[name] = {"mb": round(json.loads(inspected.stdout)[0]["Size"] / 1e6)}
    runtime = subprocess.run([str(HERE / "podman-args")], capture_output=True, text=True, check=False)
    result = {
        "build_s": round(build_s, 1),
        "smoke_s": round(smoke_s, 1),
        "smoke_passed": smoke.returncode == 0,
        "smoke_steps": [line for line in smoke.stdout.splitlines() if line.startswith("smoke:")],
        "images": images,
        "podman_args": runtime.stdout.strip(),
        "podman": subprocess.run(["podman", "--version"], capture_output=True, text=True).stdout.strip(),
    }
    print(json.dumps(result, indent=2))
    print(f"containers: wrote {write_result('containers', result)}")
    if not result["smoke_passed"]:
        raise SystemExit(f"containers: the smoke test failed:\n{smoke.stdout}\n{smoke.stderr}")


if __name__ == "__main__":
    main()
