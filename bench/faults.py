"""`python -m bench.faults`: one real federation on this machine, one round per fault, and what
each fault cost.

Every part is the real one, as in `coordinator demo`: a SuperLink with TLS and site keys, two
`site-agent join` hospitals that train a small DP-GAN (dpgan3d, a checkpoint every epoch), the
coordinator service as its own process with its object store on a tmpfs of its own, and every round
launched through the API. One fault per round, struck while the round is at the step named:

- `site_killed`: a site's agent and its training, SIGKILL, once it has checkpointed; restarted.
- `service_killed`: `coordinator serve`, SIGKILL, while both sites train; restarted.
- `superlink_killed`: the SuperLink and its ServerApp, SIGKILL, while both sites train; restarted
  on its own database.
- `serverapp_killed`: the ServerApp, SIGKILL, once the round pools, trains or evaluates.
- `object_store_full`: the store's tmpfs shrunk to what it holds before the round; grown again once
  the service has said the store is full.
- `site_disk_full`: a tmpfs of 64 KB over one site's `models` folder, where its training writes its
  checkpoints; removed after the round.

For each round, from what ran: its state and how it ended, reruns and messages asked again; from
each site's own ledger, reservations and releases for the round (spend double-counted: a second
reservation or release for one round; spend lost: a set the round took from a site whose ledger
shows no release of it); from the service, every recorded pooled version and model downloaded
file by file through the API and checked against its SHA256SUMS (half-published: one that fails),
and the store's prefixes that no record points at once the service has caught up. Goal: every
round ends in a definite state, 0 double-counted, 0 lost, 0 half-published.

Needs root (or passwordless sudo) for the tmpfs mounts. Results go to bench/results/faults.json;
`--keep` keeps the scratch folder for a look at the logs; `--only NAME ...` runs some faults.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import write_result
from bench.scale import build_sites
from coordinator.config import CoordinatorSettings, load_coordinator_settings
from coordinator.demo.run import local_coordinator
from coordinator.demo.service import DemoTokens, make_tokens
from coordinator.federation.local import LocalFederation
from coordinator.federation.sites import list_sites, online_node_ids
from site_agent.config import load_site_settings
from site_agent.privacy.ledger import Ledger

BOX, SPACING_MM = (32, 32, 48), 6.0  # the suite's test size: faults, not image quality
ROUND_TIMEOUT_S = 150
FINISH_WITHIN_S = 900
STORE_MB = 256
SITE_DISK_KB = 64
FAULTS = (
    "site_killed",
    "service_killed",
    "superlink_killed",
    "serverapp_killed",
    "object_store_full",
    "site_disk_full",
)
FINISHED = ("completed", "failed", "cancelled")


def _say(text: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {text}", flush=True)


def _mount(*args: str) -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    done = subprocess.run([*sudo, "mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"mount {' '.join(args)} failed (root or passwordless sudo needed): {done.stderr}")


def _umount(folder: Path) -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*sudo, "umount", "--lazy", str(folder)], capture_output=True, check=False)


@dataclass
class Bench:
    out: Path
    settings: CoordinatorSettings
    federation: LocalFederation
    sites: dict[str, Path]  # site id -> its site.toml
    env: dict[str, str]
    store: Path
    tokens: DemoTokens
    url: str = ""
    service_marks: list[int] = field(default_factory=list)

    def operator(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens.operator}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def report(self, round_id: str) -> dict[str, Any]:
        with self.operator() as operator:
            found: dict[str, Any] = operator.get(f"/rounds/{round_id}").json()
            return found

    def runs_for(self, site: str, round_id: str) -> list[Any]:
        ledger = load_site_settings(self.sites[site]).paths.ledger
        return [r for r in Ledger(ledger).runs().values() if r.round_id == round_id]

    def all_training(self, round_id: str) -> bool:
        return all(self.runs_for(site, round_id) for site in self.sites)

    def service_log(self) -> str:
        return (self.out / "coordinator" / "logs" / "processes" / "service.out").read_text(errors="replace")


def _wait(what: str, ready: Callable[[], bool], timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.3)


# --- the faults: each strikes once its round is at the step named, and returns when it is over ----


def site_killed(bench: Bench, round_id: str) -> None:
    site = next(iter(bench.sites))
    models = load_site_settings(bench.sites[site]).paths.models

    def checkpointed() -> bool:
        return any((models / r.run_id / "checkpoint.pt").exists() for r in bench.runs_for(site, round_id))

    _wait(f"{site} checkpoints its training for {round_id}", checkpointed)
    bench.federation.kill_site(site)
    bench.federation.join(site, bench.sites[site], env=bench.env)


def service_killed(bench: Bench, round_id: str) -> None:
    _wait(f"both sites train for {round_id}", lambda: bench.all_training(round_id))
    bench.federation.kill_service()
    bench.url = bench.federation.start_service()


def superlink_killed(bench: Bench, round_id: str) -> None:
    _wait(f"both sites train for {round_id}", lambda: bench.all_training(round_id))
    bench.federation.kill_superlink()
    bench.federation.start_superlink()
    registry = list_sites(bench.settings)
    nodes = {registry[site].node_id for site in bench.sites}
    _wait("the sites reconnect to the restarted SuperLink", lambda: nodes <= online_node_ids(bench.settings))


def serverapp_killed(bench: Bench, round_id: str) -> None:
    _wait(
        f"{round_id} pools, trains or evaluates",
        lambda: bench.report(round_id)["state"] in ("pooling", "training", "evaluating"),
        timeout_s=FINISH_WITHIN_S,
    )
    if bench.federation.kill_server_apps() != 1:
        raise RuntimeError("expected one ServerApp to kill")


# --- one round ------------------------------------------------------------------------------------


def _verify_catalogue(bench: Bench) -> dict[str, int]:
    """Every recorded pooled version and model, downloaded file by file through the API and checked
    against its own SHA256SUMS; and the store's prefixes that no record points at."""
    checked = half = 0
    with bench.operator() as operator:
        items = [f"/datasets/pooled/{d['version']}" for d in operator.get("/datasets").json()]
        items += [f"/models/{m['model_sha256']}" for m in operator.get("/models").json()]
        for item in items:
            whole = True
            for line in operator.get(f"{item}/SHA256SUMS").text.splitlines():
                digest, _, name = line.partition("  ")
                served = operator.get(f"{item}/files/{name}")
                whole &= served.status_code == 200 and hashlib.sha256(served.content).hexdigest() == digest
            checked += 1
            half += int(not whole)
    prefixes = [p for kind in ("datasets/pooled", "models") for p in (bench.store / kind).glob("*")]
    return {"recorded_checked": checked, "half_published": half, "store_prefixes": len(prefixes)}


def _wait_recorded(bench: Bench, report: dict[str, Any], timeout_s: float = 120.0) -> float:
    """Seconds until the service has recorded the round's pooled version and model."""
    started = time.monotonic()
    with bench.operator() as operator:

        def recorded() -> bool:
            versions = {d["version"] for d in operator.get("/datasets").json()}
            models = {m["model_sha256"] for m in operator.get("/models").json()}
            return report["pooled_version"] in versions and report["model_sha256"] in models

        _wait(f"the service records {report['round_id']}'s set and model", recorded, timeout_s)
    return time.monotonic() - started


def one_round(bench: Bench, fault: str, round_id: str) -> dict[str, Any]:
    _say(f"{fault}: launching {round_id}")
    body = {
        "round_id": round_id,
        "epsilon": 3.0,
        "per_class": 2,
        "box": list(BOX),
        "spacing_mm": SPACING_MM,
        "min_sites": 1,
        "timeout_s": ROUND_TIMEOUT_S,
        "generator": "dpgan3d",
    }
    models = load_site_settings(bench.sites[list(bench.sites)[-1]]).paths.models
    if fault == "object_store_full":  # room for what it holds and a little more, not for a new set
        disk = os.statvfs(bench.store)  # blocks, not file sizes: tmpfs will not shrink below its use
        used_kb = (disk.f_blocks - disk.f_bfree) * disk.f_frsize // 1024
        _mount("-o", f"remount,size={used_kb + 64}k", str(bench.store))
    if fault == "site_disk_full":
        _mount("-t", "tmpfs", "-o", f"size={SITE_DISK_KB}k", "tmpfs", str(models))
    started = time.monotonic()
    with bench.operator() as operator:
        launched = operator.post("/rounds", json=body)
    if launched.status_code != 201:
        raise RuntimeError(f"{round_id} was not launched: {launched.status_code} {launched.text}")
    struck = started
    strike = {
        "site_killed": site_killed,
        "service_killed": service_killed,
        "superlink_killed": superlink_killed,
        "serverapp_killed": serverapp_killed,
    }.get(fault)
    if strike is not None:
        strike(bench, round_id)
        struck = time.monotonic()
        _say(f"{fault}: struck {struck - started:.0f} s into {round_id}")
    _wait(f"{round_id} finishes", lambda: bench.report(round_id)["state"] in FINISHED, FINISH_WITHIN_S)
    finished = time.monotonic()
    report = bench.report(round_id)
    result: dict[str, Any] = {
        "fault": fault,
        "round_id": round_id,
        "state": report["state"],
        "message": report["message"][:300],
        "round_wall_s": round(finished - started, 1),
        "fault_to_end_s": round(finished - struck, 1) if strike is not None else None,
        "reruns": report["reruns"],
        "sites": {
            site: {
                "synthesis": r["synthesis"],
                "reason": r["reason"],
                "evaluation": r["evaluation"],
                "asked_again": r["asked_again"],
            }
            for site, r in report["sites"].items()
        },
    }
    if fault == "site_disk_full":
        _umount(models)
    if fault == "object_store_full" and report["state"] == "completed":
        _wait(
            "the service says the object store is full",
            lambda: bench.service_log().count("is full") > bench.service_marks[-1],
            timeout_s=120,
        )
        result["store_full_said"] = True
        _mount("-o", f"remount,size={STORE_MB * 1024}k", str(bench.store))
        result["recorded_after_grown_s"] = round(_wait_recorded(bench, report), 1)
    elif report["state"] == "completed":
        _wait_recorded(bench, report)
    bench.service_marks.append(bench.service_log().count("is full"))

    double = lost = reserved = 0
    for site in bench.sites:
        runs = bench.runs_for(site, round_id)
        releases = sum(len(r.releases) for r in runs)
        reserved += len(runs)
        double += max(0, len(runs) - 1) + max(0, releases - 1)
        took = report["sites"].get(site, {}).get("synthesis") == "answered"
        lost += int(took and releases == 0)
    result.update(
        {
            "reservations": reserved,
            "spend_double_counted": double,
            "spend_lost": lost,
            **_verify_catalogue(bench),
        }
    )
    result["definite"] = result["state"] in FINISHED
    _say(
        f"{fault}: {round_id} {result['state']} in {result['round_wall_s']:.0f} s, "
        f"reruns {result['reruns']}, double-counted {double}, lost {lost}, "
        f"half-published {result['half_published']}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=FAULTS, default=list(FAULTS))
    parser.add_argument("--cases", type=int, default=14, help="phantom patients per hospital")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp(prefix="fedsynth-faults-"))
    env = {
        **os.environ,
        "FEDSYNTH_PREPROCESSING__BOX": json.dumps(list(BOX)),
        "FEDSYNTH_PREPROCESSING__SPACING_MM": str(SPACING_MM),
        "FEDSYNTH_GENERATOR__BACKEND": "dpgan3d",
        "FEDSYNTH_GENERATOR__WIDTH": "4",
        "FEDSYNTH_GENERATOR__LATENT_DIM": "8",
        "FEDSYNTH_GENERATOR__BATCH_SIZE": "4",
        "FEDSYNTH_GENERATOR__EPOCHS": "12",
        "FEDSYNTH_GENERATOR__CHECKPOINT_SECONDS": "0",
        "FEDSYNTH_PRIVACY__EPSILON_CAP": "100",
    }
    config = local_coordinator(
        out / "coordinator",
        {"diagnosis_epochs": "2", "diagnosis_patience": "2", "min_sites": "1"},
    )
    store = out / "store"
    store.mkdir()
    config.write_text(config.read_text().replace('url = ""\n# An S3', f'url = "{store}"\n# An S3'))
    settings = load_coordinator_settings(config)
    _mount("-t", "tmpfs", "-o", f"size={STORE_MB}m", "tmpfs", str(store))
    results: list[dict[str, Any]] = []
    try:
        _say("building 2 phantom hospitals")
        names = build_sites(out, 2, args.cases, env, settings.paths.certificates / "ca.pem")
        sites = {name: out / "sites" / name / "site.toml" for name in names}
        site_env = {k: env[k] for k in env if k.startswith("FEDSYNTH_")}
        with LocalFederation(settings, config, out / "coordinator" / "logs" / "processes") as federation:
            federation.start_superlink()
            for name, site_toml in sites.items():
                federation.register(name, site_toml.parent / "certs" / "site.pub")
                federation.join(name, site_toml, env=site_env, wait=False)
            federation.wait_online(names)
            bench = Bench(out, settings, federation, sites, site_env, store, make_tokens(settings))
            bench.url = federation.start_service()
            bench.service_marks.append(0)
            for number, fault in enumerate(args.only, start=1):
                try:
                    results.append(one_round(bench, fault, f"f{number}-{fault.replace('_', '-')}"))
                except (TimeoutError, RuntimeError) as exc:  # a finding: the fault left it undecided
                    _say(f"{fault}: {exc}")
                    results.append({"fault": fault, "definite": False, "error": str(exc)})
    finally:
        _umount(store)
        for site_toml in sites.values() if "sites" in locals() else []:
            _umount(load_site_settings(site_toml).paths.models)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    payload = {
        "faults": results,
        "rounds": len(results),
        "definite": sum(bool(r.get("definite")) for r in results),
        "completed": sum(r.get("state") == "completed" for r in results),
        "spend_double_counted": sum(r.get("spend_double_counted", 0) for r in results),
        "spend_lost": sum(r.get("spend_lost", 0) for r in results),
        "half_published": sum(r.get("half_published", 0) for r in results),
        "scratch": str(out) if args.keep else None,
    }
    path = write_result("faults", payload)
    _say(f"wrote {path}")
    sys.exit(0 if payload["definite"] == payload["rounds"] else 1)


if __name__ == "__main__":
    main()
