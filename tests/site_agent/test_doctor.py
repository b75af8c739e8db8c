"""`site-agent doctor` against a site ready to go live (a real SuperLink with TLS, a real DICOM
receiver) and against deliberately broken set-ups: each fault is named, with what to do."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from coordinator.config import load_coordinator_settings
from coordinator.coordinator_toml import write_coordinator_toml
from coordinator.federation.certificates import init_certificates
from coordinator.federation.flower_cli import client_address
from coordinator.federation.local import LocalFederation
from shared.federation.processes import free_port
from site_agent.config import load_site_settings
from site_agent.doctor import run_checks
from site_agent.federation.keys import generate_site_key
from tests.doctor_runner import run_doctor
from tests.expired_certificate import write_expired_certificate
from tests.site_agent.conftest import TrainedSite


def _set(config: Path, old: str, new: str) -> None:
    text = config.read_text()
    assert old in text, old
    config.write_text(text.replace(old, new))


def test_a_site_ready_to_go_live_passes_with_a_real_superlink_and_receiver(
    site_config: Path, tmp_path: Path
) -> None:
    coordinator = write_coordinator_toml(tmp_path / "coordinator")
    _set(coordinator, "superlink_port = 9092", f"superlink_port = {free_port()}")
    settings = load_coordinator_settings(coordinator)
    init_certificates(settings.paths.certificates, hosts=["127.0.0.1", "localhost"])
    site = load_site_settings(site_config)
    generate_site_key(site.federation.private_key)
    site.federation.ca_certificate.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(settings.paths.certificates / "ca.pem", site.federation.ca_certificate)
    _set(site_config, 'superlink = ""', f'superlink = "{client_address(settings)}"')
    _set(site_config, "port = 11112", f"port = {free_port()}")

    with LocalFederation(settings, coordinator, tmp_path / "logs") as federation:
        federation.start_superlink()
        code, found = run_doctor("site_agent", site_config)
        assert found["SuperLink"][0].status == "pass", found["SuperLink"]
        assert "certificate the CA signed" in found["SuperLink"][0].detail
        for name in (
            "settings",
            "privacy ledger",
            "case store",
            "write permissions",
            "site key",
            "coordinator CA",
        ):
            assert [c.status for c in found[name]] == ["pass"], found[name]
        assert found["DICOM receiver"][0].detail.endswith("is free for `site-agent receive`")
        assert found["PyTorch and GPU"][0].status in ("pass", "warn")  # a CPU machine warns
        assert code == 0

        # With the receiver running, the port is taken by it: it answers C-ECHO.
        receiver = subprocess.Popen(
            [sys.executable, "-m", "site_agent", "receive", "--config", str(site_config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = load_site_settings(site_config).receive.port
            deadline = time.monotonic() + 60
            while True:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                assert receiver.poll() is None and time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.2)
            code, found = run_doctor("site_agent", site_config)
            (receive,) = found["DICOM receiver"]
            assert receive.status == "pass" and "answers C-ECHO as FEDSYNTH" in receive.detail, receive
            assert code == 0
        finally:
            receiver.terminate()
            receiver.wait(timeout=30)


def test_every_broken_part_of_a_site_is_named_with_what_to_do(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    site = trained_site.copy(tmp_path / "site")
    settings = site.settings
    # A ledger edited by hand, a key others can read, an expired CA, a SuperLink that is not there,
    # a case file gone, an exports "folder" that is a file, and the DICOM port held by a stranger.
    lines = settings.paths.ledger.read_text().splitlines(keepends=True)
    settings.paths.ledger.write_text(lines[0].replace('"event"', '"evnt"') + "".join(lines[1:]))
    generate_site_key(settings.federation.private_key)
    os.chmod(settings.federation.private_key, 0o644)
    write_expired_certificate(settings.federation.ca_certificate)
    (case_file,) = list((settings.paths.store / "cases").iterdir())[:1]
    case_file.unlink()
    shutil.rmtree(settings.paths.exports, ignore_errors=True)
    settings.paths.exports.write_text("not a folder")
    stranger = socket.socket()
    stranger.bind(("127.0.0.1", 0))
    stranger.listen()
    _set(site.config, 'superlink = ""', f'superlink = "127.0.0.1:{free_port()}"')
    _set(site.config, "port = 11112", f"port = {stranger.getsockname()[1]}")
    try:
        code, found = run_doctor("site_agent", site.config)
    finally:
        stranger.close()

    assert code == 1
    expected = {
        "privacy ledger": ("is damaged at line 1", "site-agent restore"),
        "case store": ("case files the index names are missing", "ingest the studies again"),
        "write permissions": (str(settings.paths.exports), "ownership"),
        "site key": ("is readable by others (mode 644)", "chmod 600"),
        "coordinator CA": ("expired 3 days ago", "new CA"),
        "SuperLink": ("cannot connect", "firewall"),
        "DICOM receiver": ("does not answer C-ECHO", "[receive] port"),
    }
    for name, (detail, fix) in expected.items():
        (check,) = found[name]
        assert check.status == "fail" and detail in check.detail and fix in check.fix, check
    assert found["settings"][0].status == "pass"

    # A GPU this torch cannot use (a CPU build on a GPU host) is a failure, with the fix.
    (torch_check,) = [
        c for c in run_checks(site.config, gpu_present=lambda: True) if c.name == "PyTorch and GPU"
    ]
    assert torch_check.status == "fail" and "install a CUDA build" in torch_check.fix

    # A settings file that does not load stops there, and says so.
    broken = tmp_path / "broken.toml"
    broken.write_text("[privacy\n")
    code, found = run_doctor("site_agent", broken)
    assert code == 1 and list(found) == ["settings"] and found["settings"][0].status == "fail"
