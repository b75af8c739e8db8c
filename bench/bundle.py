"""`python -m bench.bundle`: the offline install, end to end, timed.

`scripts/bundle` builds the archive (the wheels of requirements.lock, torch's CPU build and
fedsynth's own wheel). The archive is unpacked and `fedsynth-bundle/install` runs in a network
namespace of its own (`unshare -n`: no interface but loopback, so no registry can be reached) with
the host's pip settings removed. The installed agent and coordinator are then smoke-tested there,
still offline:
- `site-agent --version` and `coordinator --version`;
- `site-agent init`;
- `site-agent doctor`, whose checks must all pass or warn (a fresh site is not joined yet);
- `site-agent phantom`, then `site-agent ingest` of its DICOM (pydicom, the decoders, the crop).

Needs root (or unprivileged user namespaces) for `unshare`. Results go to bench/results/bundle.json.
This runs as a benchmark, not in the suite: the download and the install take about 1.5 minutes on
2 cores, which the suite's 12-minute bar has no room for.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write_result

ROOT = Path(__file__).resolve().parents[1]


def _offline(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`argv` in a network namespace with no network, without the host's pip settings."""
    skip = ("PIP_", "FEDSYNTH_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    unshare = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
    return subprocess.run([*unshare, *argv], capture_output=True, text=True, check=False, env=env, **kwargs)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="fedsynth-bundle-") as scratch:
        work = Path(scratch)
        started = time.monotonic()
        built = subprocess.run(
            [str(ROOT / "scripts" / "bundle"), str(work / "dist")],
            capture_output=True,
            text=True,
            check=False,
        )
        build_s = time.monotonic() - started
        if built.returncode != 0:
            raise SystemExit(f"scripts/bundle failed:\n{built.stdout[-2000:]}\n{built.stderr[-2000:]}")
        (archive,) = (work / "dist").glob("fedsynth-*.tar")
        with tarfile.open(archive) as tar:
            tar.extractall(work / "unpacked", filter="data")
        bundle = work / "unpacked" / "fedsynth-bundle"
        wheels = sorted((bundle / "wheels").iterdir())

        started = time.monotonic()
        installed = _offline([str(bundle / "install"), str(work / "opt")])
        install_s = time.monotonic() - started
        bin_dir = work / "opt" / ".venv" / "bin"
        site = work / "site"
        smoke: dict[str, Any] = {}
        if installed.returncode == 0:
            agent, config = str(bin_dir / "site-agent"), str(site / "site.toml")
            commands = {
                "site-agent --version": [agent, "--version"],
                "coordinator --version": [str(bin_dir / "coordinator"), "--version"],
                "site-agent init": [agent, "init", str(site), "--site-id", "offline"],
                "site-agent doctor": [agent, "doctor", "--config", config, "--json"],
                "site-agent phantom": [agent, "phantom", str(work / "dicom"), "--cases", "2", "--balanced"],
                "site-agent ingest": [agent, "ingest", str(work / "dicom"), "--config", config],
            }
            for name, argv in commands.items():
                done = _offline(argv, timeout=600)
                smoke[name] = {"exit_code": done.returncode, "tail": (done.stdout + done.stderr)[-300:]}
                if name == "site-agent doctor" and done.returncode == 0:
                    smoke[name]["statuses"] = {c["name"]: c["status"] for c in json.loads(done.stdout)}
        passed = installed.returncode == 0 and all(s["exit_code"] == 0 for s in smoke.values())
        payload = {
            "archive": archive.name,
            "archive_mb": round(archive.stat().st_size / 1e6),
            "wheels": len(wheels),
            "build_s": round(build_s, 1),
            "offline_install_s": round(install_s, 1),
            "install_exit_code": installed.returncode,
            "install_tail": (installed.stdout + installed.stderr)[-500:],
            "smoke": smoke,
            "passed": passed,
        }
    path = write_result("bundle", payload)
    verdict = "passed" if passed else "FAILED"
    print(f"wrote {path}: {verdict}; build {build_s:.0f} s, offline install {install_s:.0f} s")
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
