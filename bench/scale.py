"""`python -m bench.scale [--sites 10 50]`: one round with N hospitals on one SuperLink, on this machine.

Every part is the real one, as in `coordinator demo`: a SuperLink with TLS and site keys, one
`site-agent join` (a Flower SuperNode and its SuperExec) per hospital, the coordinator service, and
one round launched through its API: each site is sent the public foundation, releases its lesion
statistics (lesionstats, one Gaussian-mechanism release) and a small synthetic set, the
coordinator pools them and trains the diagnostic model, and every site scores it on its held-out
cases.

The hospitals are copies of one phantom hospital, written and ingested once by the site agent's
CLI: each copy has its own site id, key pair, ledger and egress log (its store and site secret are
the template's, which only makes building 50 sites quick).

Reported, from what ran:
- the round's wall time and phases, and each site's own work: the wall and CPU seconds its
  handlers took (`answer_s`, `answer_cpu_s` in its egress log);
- orchestration overhead per site: the round's wall time less the coordinator's own work (pooling,
  training) and less the sites' CPU work spread over this machine's cores, divided by the sites.
  What is left is Flower's: starting a ClientApp process per message, polling, moving messages.
  Goal (issue 20): at most 2 s per site;
- memory, sampled every second from /proc (proportional set size, so that shared libraries are
  counted once): the SuperLink; the coordinator (service, ServerApp and its SuperExec); the sites'
  SuperNodes and SuperExecs; the sites' ClientApps; the machine's lowest available memory.

`--answers-at-once N` sets every site's `[compute] answers_at_once`: at most N answers that load
torch (training, scoring) run at once on this machine, the others wait their turn, as several
agents sharing one machine should be configured (0, the default, sets no limit).

A run that runs the machine low on memory is stopped before the kernel's OOM killer picks a victim,
and recorded as stopped, with how far its round got; a round that fails is recorded with its
state and each site's outcome. Both are findings, not errors.

Results go to bench/results/scale.json (`--add` keeps the runs of other site counts already there,
and draws the line to 500 sites through the two largest completed runs); `--keep` keeps the scratch
folders for a look at the logs.
"""

from __future__ import annotations

import _thread
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import RESULTS, write_result
from coordinator.client.api import ApiClient
from coordinator.config import load_coordinator_settings
from coordinator.demo.run import local_coordinator
from coordinator.demo.service import make_tokens, run_round
from coordinator.federation.local import LocalFederation
from coordinator.federation.rounds import RoundReport
from coordinator.foundation.catalogue import add_foundation
from shared.crop_box import CPU_BOX, CPU_SPACING_MM
from shared.foundation.shipped import SHIPPED_FOUNDATION
from site_agent.federation.keys import generate_site_key
from site_agent.site_toml import write_site_toml

GOAL_OVERHEAD_PER_SITE_S = 2.0
ROUND_ID = "scale-round-1"
SAMPLE_S = 1.0
MEMORY_FLOOR_MB = 3000.0  # stop, and say so, rather than let the OOM killer choose
# Each kind of process, told apart by its command line (first match wins).
KINDS = (
    ("clientapp", "flwr-clientapp"),
    ("serverapp", "flwr-serverapp"),
    ("superexec", "flower-superexec"),  # a site's (under its SuperNode) or the coordinator's
    ("supernode", "flower-supernode"),
    ("superlink", "flower-superlink"),
    ("service", "coordinator serve"),
)
COORDINATOR = ("serverapp", "coordinator_superexec", "service")
SITES = ("supernode", "site_superexec")


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _tree() -> dict[int, int]:
    """pid -> parent pid of every process, from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _descendants(root: int, parents: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid, parent in parents.items():
        children[parent].append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children[todo.pop()]:
            found.add(child)
            todo.append(child)
    return found


class ProcessSampler(threading.Thread):
    """Every second, each process this benchmark started, by kind: the peak of each kind's summed
    proportional set size (shared libraries counted once), and each process's CPU seconds as last
    seen; also the lowest memory the machine had available. Below `floor_mb` available it stops the
    benchmark (KeyboardInterrupt in the main thread, which stops every process it started) before
    the kernel's OOM killer picks a victim."""

    def __init__(self, floor_mb: float) -> None:
        super().__init__(daemon=True)
        self.floor_mb = floor_mb
        self.exhausted = False
        self.peaks: dict[str, float] = defaultdict(float)
        self.peak_counts: dict[str, int] = defaultdict(int)
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (kind, CPU seconds when last seen)
        self.min_available_mb = float("inf")
        self._halt = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _kind(pid: int, parents: dict[int, int]) -> str | None:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        kind = next((kind for kind, mark in KINDS if mark in command), None)
        if kind == "superexec":
            parent = ProcessSampler._kind(parents.get(pid, 0), parents)
            return "coordinator_superexec" if parent == "superlink" else "site_superexec"
        return kind

    def sample(self) -> None:
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        parents = _tree()
        for pid in _descendants(os.getpid(), parents):
            try:
                kind = self._kind(pid, parents)
                if kind is None:
                    continue
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it ended while being read
            pss = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
            if pss:
                sums[kind] += int(pss.group(1)) / 1024
                counts[kind] += 1
            self.cpu[pid] = (kind, (int(fields[11]) + int(fields[12])) / self._tick)  # utime + stime
        for kind, total in sums.items():
            self.peaks[kind] = max(self.peaks[kind], total)
            self.peak_counts[kind] = max(self.peak_counts[kind], counts[kind])
        for group, kinds in (("coordinator", COORDINATOR), ("sites_resident", SITES)):
            self.peaks[group] = max(self.peaks[group], sum(sums[k] for k in kinds))
        self.peaks["all"] = max(self.peaks["all"], sum(sums.values()))
        available = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
        if available:
            self.min_available_mb = min(self.min_available_mb, int(available.group(1)) / 1024)
            if self.min_available_mb < self.floor_mb and not self.exhausted:
                self.exhausted = True
                _thread.interrupt_main()

    def run(self) -> None:
        while not self._halt.wait(SAMPLE_S):
            self.sample()

    def cpu_by_kind(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for kind, seconds in self.cpu.values():
            totals[kind] += seconds
        return dict(totals)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()


class _Progress:
    """Prints the round's state and progress when they change."""

    def __init__(self) -> None:
        self.last = ""

    def __call__(self, report: RoundReport) -> None:
        text = f"round: {report.state}: {report.progress or report.message}"
        if text != self.last:
            _say(text)
            self.last = text


def site_agent(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "site_agent", *args], capture_output=True, text=True, check=False, env=env
    )
    if result.returncode not in (0, 1):  # 1: some series refused, which the template checks below
        raise SystemExit(f"site-agent {args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def build_sites(out: Path, count: int, cases: int, env: dict[str, str], ca: Path) -> list[str]:
    """A phantom hospital written and ingested by the site agent's CLI, then `count` copies of it,
    each with its own site id, key pair, ledger and logs."""
    template = out / "template"
    dicom = template / "phantom-dicom"
    site_agent(env, "init", str(template), "--site-id", "template")
    site_agent(
        env,
        "phantom",
        str(dicom),
        "--cases",
        str(cases),
        "--profile",
        "site_a",
        "--seed",
        "0",
        "--matrix",
        "96",
        "--slice-mm",
        "5",
        "--balanced",
    )
    report = template / "logs" / "ingest.json"
    site_agent(
        env,
        "ingest",
        str(dicom),
        "--config",
        str(template / "site.toml"),
        "--labels",
        str(dicom / "labels.csv"),
        "--report",
        str(report),
    )
    stored = len(json.loads(report.read_text())["accepted"])
    if stored != cases:
        raise SystemExit(f"the template hospital stored {stored} of its {cases} phantom patients")
    shutil.rmtree(dicom)
    names = [f"site_{n:03d}" for n in range(count)]
    for name in names:
        home = out / "sites" / name
        shutil.copytree(template, home, ignore=shutil.ignore_patterns("logs", "site.key", "site.pub"))
        write_site_toml(home, name, force=True)
        generate_site_key(home / "certs" / "site.key", force=True)
        shutil.copyfile(ca, home / "certs" / "coordinator-ca.pem")
    return names


def site_answers(out: Path, names: list[str]) -> dict[str, dict[str, float]]:
    """Each site's answers, from its egress log, summed over its messages: wall and CPU seconds of
    its handlers, CPU seconds its ClientApps took to start, messages and bytes sent."""
    answers: dict[str, dict[str, float]] = {}
    for name in names:
        log = out / "sites" / name / "logs" / "egress" / "egress.jsonl"
        totals: dict[str, float] = defaultdict(float)
        for line in log.read_text().splitlines() if log.is_file() else []:
            record = json.loads(line)
            totals["wall_s"] += record["answer_s"]
            totals["cpu_s"] += record["answer_cpu_s"]
            totals["messages"] += 1
            totals["bytes"] += record["bytes"]
            totals["start_cpu_s"] += record["start_cpu_s"]
            totals[f"start_cpu_s:{record['message_type']}"] += record["start_cpu_s"]
            totals[f"messages:{record['message_type']}"] += 1
        answers[name] = dict(totals)
    return answers


def start_cpu_by_message(answers: dict[str, dict[str, float]]) -> dict[str, float]:
    """The mean CPU seconds a ClientApp took to start, per message type, over every site."""
    cpu: dict[str, float] = defaultdict(float)
    count: dict[str, float] = defaultdict(float)
    for totals in answers.values():
        for key, value in totals.items():
            kind, _, message_type = key.partition(":")
            if kind == "start_cpu_s" and message_type:
                cpu[message_type] += value
            elif kind == "messages" and message_type:
                count[message_type] += value
    return {t: round(cpu[t] / count[t], 2) for t in sorted(count) if count[t]}


def run(out: Path, count: int, cases: int, per_class: int, answers_at_once: int) -> dict[str, Any]:
    box, spacing = CPU_BOX, CPU_SPACING_MM
    env = {
        **os.environ,
        "FEDSYNTH_PREPROCESSING__BOX": json.dumps(list(box)),
        "FEDSYNTH_PREPROCESSING__SPACING_MM": str(spacing),
        "FEDSYNTH_GENERATOR__BACKEND": "lesionstats",
        "FEDSYNTH_COMPUTE__ANSWERS_AT_ONCE": str(answers_at_once),
    }
    # A bound, not a target: 20 sites took 405 s to synthesize and 282 s to evaluate on 2 cores.
    timeout_s = 600.0 + 40.0 * count
    config = local_coordinator(
        out / "coordinator",
        {
            "diagnosis_epochs": "2",
            "diagnosis_patience": "2",
            "round_timeout_s": f"{timeout_s:.1f}",
            "evaluate_timeout_s": f"{timeout_s:.1f}",
            "min_sites": str(count),
        },
    )
    settings = load_coordinator_settings(config)
    _say(f"building {count} phantom hospitals ({cases} patients each)")
    started = time.monotonic()
    names = build_sites(out, count, cases, env, settings.paths.certificates / "ca.pem")
    build_s = time.monotonic() - started
    foundation = add_foundation(settings, SHIPPED_FOUNDATION).foundation_id
    sampler = ProcessSampler(floor_mb=MEMORY_FLOOR_MB)
    sampler.start()
    site_env = {k: env[k] for k in env if k.startswith("FEDSYNTH_")}
    result: dict[str, Any] = {
        "sites": count,
        "cases_per_site": cases,
        "per_class": per_class,
        "answers_at_once": answers_at_once,
    }
    progress = _Progress()
    try:
        with LocalFederation(settings, config, out / "coordinator" / "logs" / "processes") as federation:
            started = time.monotonic()
            federation.start_superlink()
            for name in names:
                federation.register(name, out / "sites" / name / "certs" / "site.pub")
            registered = time.monotonic()
            _say(
                f"SuperLink up, {count} sites registered in {registered - started:.0f} s; "
                "starting their SuperNodes"
            )
            for name in names:
                federation.join(name, out / "sites" / name / "site.toml", env=site_env, wait=False)
            federation.wait_online(names, timeout_s=60.0 + 5.0 * count)
            online = time.monotonic()
            _say(f"{count} sites online in {online - registered:.0f} s")
            url = federation.start_service()
            tokens = make_tokens(settings)
            body = {
                "round_id": ROUND_ID,
                "epsilon": 8.0,
                "per_class": per_class,
                "box": list(box),
                "spacing_mm": spacing,
                "min_sites": count,
                "generator": "lesionstats",
                "foundation": foundation,
            }
            with ApiClient(url, tokens.operator) as operator:
                launched = time.monotonic()
                report = run_round(operator, body, 2 * timeout_s + 600, progress)
                round_wall = time.monotonic() - launched
    except KeyboardInterrupt:
        if not sampler.exhausted:
            raise
        sampler.stop()
        _say(f"stopped: under {MEMORY_FLOOR_MB:.0f} MB of memory left, at '{progress.last}'")
        return {
            **result,
            "completed": False,
            "stopped_for_memory_at": progress.last,
            "memory_floor_mb": MEMORY_FLOOR_MB,
            "peak_pss_mb": {k: round(v) for k, v in sorted(sampler.peaks.items())},
            "peak_process_counts": dict(sorted(sampler.peak_counts.items())),
            "min_available_mb": round(sampler.min_available_mb),
        }
    finally:
        sampler.stop()
    if report.state != "completed":  # a finding too: say how far it got and what was lost
        _say(f"the round ended {report.state}: {report.message}")
        return {
            **result,
            "completed": False,
            "round_state": report.state,
            "round_message": report.message,
            "round_phases_s": report.phases,
            "site_outcomes": {name: f"{r.synthesis} {r.reason}".strip() for name, r in report.sites.items()},
            "messages_asked_again": sum(r.asked_again for r in report.sites.values()),
            "peak_pss_mb": {k: round(v) for k, v in sorted(sampler.peaks.items())},
            "min_available_mb": round(sampler.min_available_mb),
        }
    answers = site_answers(out, names)
    cores = os.cpu_count() or 1
    site_cpu = sum(a.get("cpu_s", 0.0) for a in answers.values())
    coordinator_work = sum(report.phases.get(p, 0.0) for p in ("pooling", "training"))
    overhead = (round_wall - coordinator_work - site_cpu / cores) / count
    cpu = sampler.cpu_by_kind()
    start_cpu = sum(a.get("start_cpu_s", 0.0) for a in answers.values())
    messages = sum(a.get("messages", 0.0) for a in answers.values())
    result.update(
        {
            "completed": True,
            "cores": cores,
            "build_sites_s": round(build_s, 1),
            "superlink_and_registration_s": round(registered - started, 1),
            "sites_online_s": round(online - registered, 1),
            "round_wall_s": round(round_wall, 1),
            "round_phases_s": report.phases,
            "sites_contributed": len(report.sites),
            "site_answer_wall_s_median": round(
                statistics.median(a.get("wall_s", 0.0) for a in answers.values()), 2
            ),
            "site_answer_cpu_s_median": round(
                statistics.median(a.get("cpu_s", 0.0) for a in answers.values()), 2
            ),
            "site_answer_cpu_s_total": round(site_cpu, 1),
            "messages_per_site": statistics.median(a.get("messages", 0) for a in answers.values()),
            "bytes_sent_per_site_median": statistics.median(a.get("bytes", 0) for a in answers.values()),
            "coordinator_work_s": round(coordinator_work, 1),
            "orchestration_overhead_per_site_s": round(overhead, 2),
            "goal_met": overhead <= GOAL_OVERHEAD_PER_SITE_S,
            "clientapp_start_cpu_s_per_message": round(start_cpu / max(messages, 1), 2),
            "clientapp_start_cpu_s_by_message_type": start_cpu_by_message(answers),
            "messages_asked_again": sum(r.asked_again for r in report.sites.values()),
            "cpu_s_by_process": {k: round(v, 1) for k, v in sorted(cpu.items())},
            "site_flower_cpu_s_per_site": round(
                (cpu.get("supernode", 0.0) + cpu.get("site_superexec", 0.0) + start_cpu) / count, 2
            ),
            "superlink_cpu_s_per_site": round(cpu.get("superlink", 0.0) / count, 2),
            "peak_pss_mb": {k: round(v) for k, v in sorted(sampler.peaks.items())},
            "peak_process_counts": dict(sorted(sampler.peak_counts.items())),
            "min_available_mb": round(sampler.min_available_mb),
            "model_sha256": report.model_sha256,
        }
    )
    return result


def extrapolate(runs: list[dict[str, Any]], sites: int) -> dict[str, float] | None:
    """A straight line through the two largest completed runs, read at `sites`: what grows with
    the number of hospitals at the coordinator (memory; CPU of the SuperLink)."""
    done = sorted((r for r in runs if r.get("completed")), key=lambda r: r["sites"])[-2:]
    if len(done) < 2 or done[0]["sites"] == done[1]["sites"]:
        return None
    (a, b) = done
    figures = {
        "superlink_pss_mb": lambda r: r["peak_pss_mb"].get("superlink", 0.0),
        "coordinator_pss_mb": lambda r: r["peak_pss_mb"].get("coordinator", 0.0),
        "superlink_cpu_s": lambda r: r["cpu_s_by_process"].get("superlink", 0.0),
    }
    line = {}
    for name, figure in figures.items():
        slope = (figure(b) - figure(a)) / (b["sites"] - a["sites"])
        line[name] = round(figure(b) + slope * (sites - b["sites"]), 1)
        line[f"{name}_per_site"] = round(slope, 3)
    return {"sites": sites, "from_runs": [a["sites"], b["sites"]], **line}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[10, 50], help="one round for each count")
    parser.add_argument("--cases", type=int, default=12, help="phantom patients per hospital (2 per class)")
    parser.add_argument("--per-class", type=int, default=1, help="synthetic volumes per class from each site")
    parser.add_argument("--out", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders")
    parser.add_argument(
        "--add", action="store_true", help="keep the runs of other site counts already in scale.json"
    )
    parser.add_argument(
        "--answers-at-once",
        type=int,
        default=0,
        help="the sites' [compute] answers_at_once: how many answers that load torch run at once on "
        "this machine (0: no limit)",
    )
    args = parser.parse_args()
    runs = []
    earlier = RESULTS / "scale.json"
    if args.add and earlier.is_file():
        runs = [r for r in json.loads(earlier.read_text())["runs"] if r["sites"] not in args.sites]
    for count in args.sites:
        out = (args.out / f"sites-{count}") if args.out else Path(tempfile.mkdtemp(prefix="fedsynth-scale-"))
        out.mkdir(parents=True, exist_ok=True)
        try:
            runs.append(run(out.resolve(), count, args.cases, args.per_class, args.answers_at_once))
        finally:
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
            else:
                _say(f"kept {out}")
        print(json.dumps(runs[-1], indent=2), flush=True)
    runs.sort(key=lambda r: r["sites"])
    result = {
        "goal_overhead_per_site_s": GOAL_OVERHEAD_PER_SITE_S,
        "runs": runs,
        "extrapolated": extrapolate(runs, 500),
    }
    path = write_result("scale", result)
    _say(f"wrote {path}")


if __name__ == "__main__":
    main()
