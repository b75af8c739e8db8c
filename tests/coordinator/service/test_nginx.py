"""deploy/nginx/coordinator.conf, run by a real nginx in front of a real coordinator: TLS, and
downloads that nginx sends only after the coordinator has checked who asks (X-Accel-Redirect)."""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import ssl
import subprocess
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from coordinator.config import load_coordinator_settings
from coordinator.coordinator_toml import write_coordinator_toml
from coordinator.federation.certificates import CertificateFiles, init_certificates
from coordinator.service.database import Database
from shared.federation.processes import free_port
from tests.coordinator.service.conftest import make_tokens, running_api, wait_listed, write_pooled_version

DEPLOYED = Path(__file__).resolve().parents[3] / "deploy" / "nginx" / "coordinator.conf"


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("nginx is missing: .ci/run installs Debian's nginx")  # CI must test the file
    pytest.skip("nginx is not installed (apt-get install nginx)")


def _nginx_config(root: Path, api_port: int, port: int, store: Path, certs: CertificateFiles) -> Path:
    """The deployed file with this test's ports, paths and certificate, in a minimal nginx.conf."""
    site = DEPLOYED.read_text()
    for example, here in {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{api_port};",
        "listen 8443 ssl;": f"listen 127.0.0.1:{port} ssl;",
        "/srv/fedsynth/coordinator/certs/server.pem": str(certs.superlink_certificate),
        "/srv/fedsynth/coordinator/certs/server.key": str(certs.superlink_key),
        "/srv/fedsynth/coordinator/data/store/": f"{store}/",
    }.items():
        assert example in site, example
        site = site.replace(example, here)
    (root / "site.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the test's private folders
    main = root / "nginx.conf"
    main.write_text(
        f"{user}daemon off;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\nevents {{}}\n"
        f"http {{\n access_log off;\n client_body_temp_path {root}/body;\n proxy_temp_path {root}/proxy;\n"
        f" fastcgi_temp_path {root}/fastcgi;\n uwsgi_temp_path {root}/uwsgi;\n scgi_temp_path {root}/scgi;\n"
        f" include {root}/site.conf;\n}}\n"
    )
    return main


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert process.poll() is None and time.monotonic() < deadline, "nginx did not start"
        time.sleep(0.1)


def test_nginx_sends_downloads_only_after_the_coordinator_has_checked_the_caller(tmp_path: Path) -> None:
    nginx = _nginx()
    config = write_coordinator_toml(tmp_path / "coordinator")
    config.write_text(config.read_text().replace('accel_redirect = ""', 'accel_redirect = "/_store"'))
    settings = load_coordinator_settings(config)
    assert settings.storage.accel_redirect == "/_store"
    certs = CertificateFiles(settings.paths.certificates)
    init_certificates(certs.folder, hosts=["127.0.0.1", "localhost"])
    write_pooled_version(settings, 1)
    database = Database.open(settings)
    tokens = make_tokens(database)
    with running_api(settings, config, database) as api:
        wait_listed(api, tokens["operator"], "datasets", 1)
        httpx.post(
            f"{api}/datasets/pooled/1/publish", headers={"Authorization": f"Bearer {tokens['operator']}"}
        ).raise_for_status()
        port = free_port()
        store = settings.paths.data / "store"
        main = _nginx_config(tmp_path, int(api.rsplit(":", 1)[1]), port, store, certs)
        server = subprocess.Popen([nginx, "-c", str(main), "-p", str(tmp_path)], stderr=subprocess.PIPE)
        try:
            _wait_listening(port, server)
            base = f"https://127.0.0.1:{port}"
            stored = next(store.rglob("card.json")).read_bytes()
            researcher = {"Authorization": f"Bearer {tokens['researcher']}"}
            with httpx.Client(
                base_url=base, verify=ssl.create_default_context(cafile=certs.ca_certificate), timeout=60
            ) as client:
                assert client.get("/health").json()["status"] == "ok"  # the API, over TLS
                url = "/datasets/pooled/1/files/card.json"
                whole = client.get(url, headers=researcher)
                assert whole.status_code == 200 and whole.content == stored
                assert "card.json" in whole.headers["content-disposition"]
                part = client.get(url, headers={**researcher, "Range": "bytes=5-9"})
                assert part.status_code == 206 and part.content == stored[5:10]
                archive = client.get("/datasets/pooled/1/archive", headers=researcher)
                assert archive.status_code == 200
                with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
                    names = tar.getnames()
                    card = tar.extractfile("pooled-v1/card.json")
                    assert card is not None and card.read() == stored
                assert "pooled-v1/SHA256SUMS" in names and len(names) > 10
                again = client.get("/datasets/pooled/1/archive", headers=researcher)  # kept, not rebuilt
                assert again.content == archive.content
                # Nothing without the coordinator's say: no token, or the store asked for directly.
                assert client.get(url).status_code == 401
                key = next(store.rglob("card.json")).relative_to(store).as_posix()
                assert client.get(f"/_store/{key}", headers=researcher).status_code == 404
                # The dashboard over TLS: its session cookie is Secure (uvicorn trusts nginx's
                # X-Forwarded-Proto from loopback), and its download links work on that cookie.
                form = client.get("/ui/signin")
                csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
                assert csrf is not None and "; secure" in form.headers["set-cookie"].lower()
                signed = client.post(
                    "/ui/signin", data={"token": tokens["researcher"], "csrf": csrf.group(1)}
                )
                assert signed.status_code == 303 and "; secure" in signed.headers["set-cookie"].lower()
                assert "pooled v1" in client.get("/ui/catalogue").text
                assert client.get(url).content == stored  # sent by nginx, on the cookie alone
        finally:
            server.terminate()
            server.wait(timeout=30)
    database.close()
