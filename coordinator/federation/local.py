"""A whole federation as processes on this machine, for the demo and the tests.

The SuperLink runs as `coordinator superlink`, the API as `coordinator serve` and each hospital as
`site-agent join`, the same commands an operator and a hospital's IT run, each in its own process
group so that stopping the federation stops everything it started (SuperNodes' app processes
included) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from coordinator.config import CoordinatorSettings
from coordinator.federation.errors import FederationError
from coordinator.federation.flower_cli import client_address
from coordinator.federation.sites import Site, add_site, list_sites, online_node_ids
from shared.federation.processes import free_port

START_TIMEOUT_S = 90.0
MAX_RESTARTS = 3


class LocalFederation:
    def __init__(self, settings: CoordinatorSettings, config_file: Path, logs: Path) -> None:
        self.settings = settings
        self.config_file = config_file
        self.logs = logs
        self.superlink: subprocess.Popen[bytes] | None = None
        self.service: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self._joins: dict[str, tuple[Path, dict[str, str] | None]] = {}
        self._log_starts: dict[str, int] = {}  # where each agent's latest start begins in its log
        self._files: list[IO[bytes]] = []
        logs.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> LocalFederation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(
        self, argv: list[str], log_name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / log_name).open("ab")
        self._files.append(log)
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def start_superlink(self) -> None:
        argv = [sys.executable, "-m", "coordinator", "superlink", "--config", str(self.config_file)]
        self.superlink = self._spawn(argv, "superlink.out")
        host, _, port = client_address(self.settings).rpartition(":")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.superlink.poll() is not None:
                raise FederationError(f"the SuperLink exited at start; see {self.logs / 'superlink.out'}")
            try:
                with socket.create_connection((host, int(port)), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        raise FederationError(f"the SuperLink did not listen within {START_TIMEOUT_S:.0f} s")

    def start_service(self) -> str:
        """Start `coordinator serve` on a free loopback port; return its URL once it answers."""
        port = free_port()
        argv = [sys.executable, "-m", "coordinator", "serve", "--config", str(self.config_file)]
        self.service = self._spawn([*argv, "--host", "127.0.0.1", "--port", str(port)], "service.out")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            if self.service.poll() is not None:
                raise FederationError(
                    f"the coordinator service exited at start; see {self.logs / 'service.out'}"
                )
            if time.monotonic() > deadline:
                raise FederationError(
                    f"the coordinator service did not answer within {START_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.3)

    def register(self, site_id: str, public_key: Path) -> Site:
        return add_site(self.settings, site_id, public_key)

    def log_of(self, site_id: str) -> Path:
        return self.logs / f"site-{site_id}.out"

    def join(
        self, site_id: str, site_config: Path, env: dict[str, str] | None = None, *, wait: bool = True
    ) -> None:
        """Start `site-agent join` for one site and (with `wait`) wait until the SuperLink sees it online."""
        argv = [
            sys.executable,
            "-m",
            "site_agent",
            "join",
            "--config",
            str(site_config),
            "--superlink",
            client_address(self.settings),
        ]
        if self.settings.federation.insecure:
            argv.append("--insecure")
        # Sites sharing one machine get one compute thread each: several trainings that each start a
        # thread per core oversubscribe it and run several times slower together than one by one.
        shared_host = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        port_env = {"FEDSYNTH_FEDERATION__RUNTIME_PORT": str(free_port())}
        self._joins[site_id] = (site_config, env)
        log = self.log_of(site_id)
        self._log_starts[site_id] = log.stat().st_size if log.exists() else 0
        self.agents[site_id] = self._spawn(argv, log.name, {**shared_host, **(env or {}), **port_env})
        if wait:
            self.wait_online([site_id])

    def wait_online(self, site_ids: list[str], timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until every one of these (joined) sites is connected: its agent runs, its SuperNode
        has logged the node id it was activated as, and the SuperLink counts it online. Sites that
        start together come online together, not one after another.

        Under load (bench.scale, 50 sites) Flower's SuperNode can lose the answer to its activation,
        be refused when it retries (the SuperLink already counts the node online) and exit. Such an
        agent is started again once the SuperLink has let its node go (up to about a minute), as
        `Restart=on-failure` does in deploy/systemd, at most MAX_RESTARTS times."""
        if self.settings.federation.insecure:
            return  # the SuperLink cannot tell unauthenticated sites apart
        registry = list_sites(self.settings)
        nodes = {site: registry[site].node_id for site in site_ids}
        restarts = dict.fromkeys(site_ids, 0)
        waiting = set(site_ids)
        deadline = time.monotonic() + timeout_s
        while waiting:
            online = online_node_ids(self.settings)
            for site in sorted(waiting):
                if self.agents[site].poll() is not None:
                    if restarts[site] == MAX_RESTARTS:
                        raise FederationError(f"site {site}'s agent exited at start; see {self.log_of(site)}")
                    if nodes[site] not in online:
                        restarts[site] += 1
                        self.join(site, *self._joins[site], wait=False)
                        deadline = max(deadline, time.monotonic() + timeout_s)
                elif nodes[site] in online and self._activated(site):
                    waiting.discard(site)
            if waiting and time.monotonic() > deadline:
                late = ", ".join(sorted(waiting))
                raise FederationError(f"{late} did not come online within {timeout_s:.0f} s")
            if waiting:
                time.sleep(0.5)

    def _activated(self, site_id: str) -> bool:
        """Whether the site's SuperNode, since its latest start, logged that it was activated."""
        with self.log_of(site_id).open("rb") as log:
            log.seek(self._log_starts[site_id])
            return b"SuperNode ID:" in log.read()

    def kill_site(self, site_id: str) -> None:
        """Kill a site's agent and its app processes at once (SIGKILL), as a crash would."""
        _signal_group(self.agents.pop(site_id), signal.SIGKILL)

    def kill_service(self) -> None:
        """Kill `coordinator serve` (SIGKILL), as a crash or the OOM killer would."""
        assert self.service is not None
        _signal_group(self.service, signal.SIGKILL)
        self.service = None

    def restart_site(self, site_id: str, site_config: Path, env: dict[str, str] | None = None) -> None:
        """Restart a site's agent as a service manager does (`systemctl restart`): SIGTERM to it and
        everything it started, its training included; then start it again and wait until it is online."""
        _stop(self.agents.pop(site_id))
        self.join(site_id, site_config, env)

    def freeze_apps(self, site_id: str) -> int:
        """Freeze a site's ClientApp processes (SIGSTOP), as a hung training would be: the SuperNode
        stays online and the site never answers. Unlike a long training, a frozen one takes no CPU
        from the sites that do answer. Returns how many processes it froze; stopping the federation
        ends them (SIGKILL reaches a stopped process)."""
        apps = {pid for pid in _family(self.agents[site_id].pid) if "flwr-clientapp" in _command(pid)}
        _kill(apps, signal.SIGSTOP)
        return len(apps)

    def kill_server_apps(self) -> int:
        """Kill the SuperLink's ServerApp processes (SIGKILL), as a crash or the OOM killer would;
        the SuperLink stays up. Returns how many it killed."""
        assert self.superlink is not None
        apps = {pid for pid in _family(self.superlink.pid) if "flwr-serverapp" in _command(pid)}
        _kill(apps, signal.SIGKILL)
        return len(apps)

    def kill_superlink(self) -> None:
        """Kill the SuperLink and its ServerApps (SIGKILL), as a crash or a power cut would; its
        database stays on disk for the next start."""
        assert self.superlink is not None
        _signal_group(self.superlink, signal.SIGKILL)
        self.superlink = None

    def stop_superlink(self) -> None:
        if self.superlink is not None:
            _stop(self.superlink)
            self.superlink = None

    def stop(self) -> None:
        # All at once: one after the other, each SuperNode busy training and the SuperLink could
        # take their whole grace period in turn, and a Ctrl-C took over a minute to finish.
        _stop(*self.agents.values(), *(p for p in (self.service, self.superlink) if p is not None))
        self.agents.clear()
        self.service = self.superlink = None
        for log in self._files:
            log.close()
        self._files.clear()


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) of every process, from /proc."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            table[int(stat.parent.name)] = (int(fields[1]), int(fields[2]), fields[0])
        except (OSError, ValueError, IndexError):
            continue
    return table


def _family(root: int) -> set[int]:
    """`root`, its process group, and every descendant, even one that started its own session
    (Flower starts ServerApp and ClientApp processes that way)."""
    table = _processes()
    family = {root} | {pid for pid, (_, group, _) in table.items() if group == root}
    grew = True
    while grew:
        children = {pid for pid, (parent, _, _) in table.items() if parent in family} - family
        family |= children
        grew = bool(children)
    return family


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pids: set[int]) -> set[int]:
    table = _processes()
    return {pid for pid in pids if pid in table and table[pid][2] != "Z"}


def _kill(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while (left := _alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    family = _family(process.pid)
    _kill(family, sig)
    process.wait(timeout=30)
    _kill(_wait_gone(family, 5.0), signal.SIGKILL)
    _wait_gone(family, 10.0)


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the processes and everything they started, all at once; SIGKILL to whatever is
    left after 15 s."""
    family = set().union(*(_family(process.pid) for process in processes))
    _kill(family, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    _kill(_wait_gone(family, 5.0), signal.SIGKILL)
    for process in processes:
        process.wait(timeout=15)
    _wait_gone(family, 10.0)
