"""`site-agent receive` as a real DICOM node: pynetdicom's storescu sends the real series on loopback."""

from __future__ import annotations

import contextlib
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from site_agent.config import load_site_settings
from tests.conftest import real_ct_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(process: subprocess.Popen[bytes], condition, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds * 10)):
        if condition():
            return True
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.1)
        if process.poll() is not None:
            return bool(condition())
    return False


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _cases(store: Path) -> int:
    if not (store / "index.sqlite").exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(store / "index.sqlite", timeout=5)) as db:
            return int(db.execute("SELECT COUNT(*) FROM cases").fetchone()[0])
    except sqlite3.OperationalError:  # the receiver has created the file but not yet its table
        return 0


def test_storescu_to_receive_to_store(site_config: Path, tmp_path: Path) -> None:
    settings = load_site_settings(site_config)
    port = _free_port()
    receiver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "site_agent",
            "receive",
            "--config",
            str(site_config),
            "--port",
            str(port),
            "--idle-seconds",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert _wait(receiver, lambda: _listening(port), 60), "the receiver did not start listening"
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "pynetdicom",
                "storescu",
                "127.0.0.1",
                str(port),
                str(real_ct_dir()),
                "-aec",
                settings.receive.ae_title,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr
        assert _wait(receiver, lambda: _cases(settings.paths.store) == 1, 90), "the series was not ingested"

        def inbox() -> list[Path]:
            return [p for p in settings.paths.incoming.rglob("*") if p.is_file()]

        # The case is committed first; the receiver then writes its report and clears the inbox.
        _wait(receiver, lambda: not inbox(), 30)
        assert inbox() == [], "an ingested series must leave the inbox"
        assert list((settings.paths.logs).glob("receive-*.json"))
    finally:
        receiver.send_signal(signal.SIGTERM)
        _, err = receiver.communicate(timeout=30)
    assert receiver.returncode == 0, err.decode()
