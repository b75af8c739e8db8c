"""`python -m bench.download`: the coordinator's download speed next to nginx's, on loopback.

A large pooled set (`--volumes` cubes of 64^3 float32, gzip-compressed NIfTI, as a round writes
them) is recorded and published by a real `coordinator serve` process. Its archive is fetched once
and written to disk, and Debian's nginx serves that very file from a throwaway configuration. curl
then downloads the archive from both, alternating, `--repeats` times: one download at a time, and
`--parallel` at once. Then the same again with the coordinator deployed as deploy/nginx/coordinator.conf
describes (nginx in front, `[storage] accel_redirect`: the coordinator checks the token, nginx
sends the file), TLS left out on both sides. Reported are median throughputs and the ratios
coordinator / nginx, measured in the same run. The goal (issue 20) is at least 0.9x nginx, one at
a time and four at once. Needs `nginx` and `curl` (apt-get install nginx curl).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.common import write_result
from shared.federation.processes import free_port

GOAL = 0.9
DEPLOYED = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "coordinator.conf"
NGINX_CONF = """\
worker_processes auto;
daemon off;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {www};
    }}
    include {root}/coordinator-site.conf;
}}
"""


def deployed_site(api_port: int, port: int, store: Path) -> str:
    """deploy/nginx/coordinator.conf on this run's ports and store, without TLS (the static nginx it
    is compared with serves plain HTTP too)."""
    site = DEPLOYED.read_text()
    site = site.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{api_port};")
    site = site.replace("listen 8443 ssl;", f"listen 127.0.0.1:{port};")
    site = site.replace("/srv/fedsynth/coordinator/data/store/", f"{store}/")
    return "\n".join(line for line in site.splitlines() if not line.strip().startswith("ssl_"))


def write_large_pooled_set(data: Path, volumes: int) -> None:
    from coordinator.federation.pooling import POOLED_ID
    from shared.classes import DEFAULT_CLASSES
    from shared.schemas import DatasetCard
    from shared.synthetic_set import SetItem, write_synthetic_set

    rng = np.random.default_rng(0)
    per_class = max(1, volumes // len(DEFAULT_CLASSES))
    # Smooth noise compresses about as well as real synthetic CT does (random noise would not).
    base = rng.normal(size=(8, 8, 8)).astype(np.float32)
    items = []
    for k, name in enumerate(DEFAULT_CLASSES):
        for n in range(per_class):
            field = np.kron(base + rng.normal(scale=0.3, size=base.shape), np.ones((8, 8, 8)))
            image = np.clip(field + rng.normal(scale=0.05, size=field.shape), -1, 1).astype(np.float32)
            mask = (field > 1.0).astype(np.uint8)
            items.append(SetItem(name=f"bench-{k}-{n:04d}", image=image, mask=mask, label=name, site="bench"))
    card = DatasetCard(
        dataset_id=POOLED_ID,
        version=1,
        class_counts={name: per_class for name in DEFAULT_CLASSES},
        volume_shape=(64, 64, 64),
        spacing_mm=(2.0, 2.0, 2.0),
    )
    write_synthetic_set(data / "datasets" / POOLED_ID / "v1", items, card, spacing_mm=2.0)


def curl(url: str, headers: dict[str, str]) -> tuple[int, float]:
    command = ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), float(out[1])


def throughput_mb_s(url: str, headers: dict[str, str], parallel: int) -> float:
    """Bytes per second of `parallel` simultaneous downloads, over the wall time of all of them."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        sizes = list(pool.map(lambda _: curl(url, headers)[0], range(parallel)))
    return sum(sizes) / (time.perf_counter() - started) / 1e6


def wait_http(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start") from None
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--volumes", type=int, default=600, help="cubes in the set (64^3 float32)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    for tool in ("nginx", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: apt-get install {tool}")

    from coordinator.config import load_coordinator_settings
    from coordinator.coordinator_toml import write_coordinator_toml
    from coordinator.service.database import Database
    from coordinator.service.tokens import create_token

    with tempfile.TemporaryDirectory(prefix="fedsynth-bench-download-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's workers run as an unprivileged user and must read the archive
        config = write_coordinator_toml(root / "coordinator")
        settings = load_coordinator_settings(config)
        print(f"writing a pooled set of {args.volumes} volumes", flush=True)
        write_large_pooled_set(settings.paths.data, args.volumes)
        database = Database.open(settings)
        with database.session() as session:
            token = create_token(session, name="bench", role="operator")
        database.close()

        port, nginx_port, proxy_port = free_port(), free_port(), free_port()
        api = f"http://127.0.0.1:{port}"

        def start_serve() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "coordinator", "serve", "--config", str(config), "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        serve = start_serve()
        www = root / "www"
        www.mkdir()
        (root / "tmp").mkdir()
        (root / "coordinator-site.conf").write_text(
            deployed_site(port, proxy_port, settings.paths.data / "store")
        )
        conf = root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=root, www=www, port=nginx_port))
        nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(root)], stderr=subprocess.DEVNULL)
        try:
            wait_http(f"{api}/health", serve, "coordinator serve")
            wait_http(f"http://127.0.0.1:{nginx_port}/", nginx, "nginx")
            auth = {"Authorization": f"Bearer {token}"}
            deadline = time.monotonic() + 600
            while not httpx.get(f"{api}/datasets", headers=auth, timeout=30).json():
                if time.monotonic() > deadline:
                    raise SystemExit("the service never recorded the set")
                time.sleep(0.5)
            httpx.post(f"{api}/datasets/pooled/1/publish", headers=auth, timeout=30).raise_for_status()
            archive_path = "/datasets/pooled/1/archive"
            archive = www / "pooled-v1.tar"
            bearer = f"Authorization: Bearer {token}"
            subprocess.run(
                ["curl", "-sS", "--fail", "-o", str(archive), "-H", bearer, api + archive_path], check=True
            )
            with tarfile.open(archive) as tar:  # the archive is a whole, valid tar
                members = sum(1 for m in tar if m.isfile())
            size = archive.stat().st_size
            digest = hashlib.sha256(archive.read_bytes()).hexdigest()
            nginx_url = f"http://127.0.0.1:{nginx_port}/{archive.name}"
            print(f"archive: {size / 1e6:.0f} MB, {members} files", flush=True)

            results: dict[str, Any] = {}
            for deployment in ("alone", "via_nginx"):
                if deployment == "via_nginx":  # the same service, now handing downloads to nginx
                    serve.terminate()
                    serve.wait(timeout=60)
                    config.write_text(
                        config.read_text().replace('accel_redirect = ""', 'accel_redirect = "/_store"')
                    )
                    serve = start_serve()
                    wait_http(f"{api}/health", serve, "coordinator serve")
                    wait_http(f"http://127.0.0.1:{proxy_port}/health", nginx, "nginx in front")
                base = api if deployment == "alone" else f"http://127.0.0.1:{proxy_port}"
                fetched = hashlib.sha256(httpx.get(base + archive_path, headers=auth, timeout=600).content)
                if fetched.hexdigest() != digest:
                    raise SystemExit(
                        f"{deployment}: the archive differs from the one the coordinator streamed"
                    )
                for parallel in (1, args.parallel):
                    rows: dict[str, list[float]] = {"coordinator": [], "nginx": []}
                    throughput_mb_s(base + archive_path, auth, parallel)  # warm caches and servers
                    throughput_mb_s(nginx_url, {}, parallel)
                    for _ in range(args.repeats):
                        rows["coordinator"].append(throughput_mb_s(base + archive_path, auth, parallel))
                        rows["nginx"].append(throughput_mb_s(nginx_url, {}, parallel))
                    medians = {k: round(statistics.median(v), 1) for k, v in rows.items()}
                    ratio = round(medians["coordinator"] / medians["nginx"], 3)
                    name = f"{parallel}_at_once" + ("" if deployment == "alone" else "_via_nginx")
                    results[name] = {
                        "median_mb_s": medians,
                        "ratio": ratio,
                        "runs_mb_s": {k: [round(x, 1) for x in v] for k, v in rows.items()},
                    }
                    print(
                        f"{name}: coordinator {medians['coordinator']} MB/s, "
                        f"nginx {medians['nginx']} MB/s, ratio {ratio}",
                        flush=True,
                    )
        finally:
            for process in (serve, nginx):
                process.terminate()
                process.wait(timeout=30)

    path = write_result(
        "download",
        {
            "what": "the pooled-set archive over HTTP on loopback, fetched with curl: `coordinator serve` "
            "alone (uvicorn, one process, streamed tar) and deployed behind nginx as "
            "deploy/nginx/coordinator.conf says (token checked by the coordinator, file sent by nginx: "
            "X-Accel-Redirect), each vs nginx alone (sendfile, static file)",
            "archive_mb": round(size / 1e6, 1),
            "archive_files": members,
            "archive_sha256": digest,
            "volumes": args.volumes,
            "repeats": args.repeats,
            "goal_ratio": GOAL,
            # The goal is for the deployment the README recommends for large downloads.
            "within_goal": all(r["ratio"] >= GOAL for k, r in results.items() if k.endswith("via_nginx")),
            "results": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
