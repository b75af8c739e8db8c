"""`site-agent backup` and `restore`: consistent while the ledger is written, verified, and never a
restore that forgets spend without an operator saying so."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from shared.privacy import DPRun
from site_agent.backup import BackupError, backup, restore
from site_agent.config import load_site_settings
from site_agent.federation.keys import generate_site_key
from site_agent.ingest.pseudonyms import SECRET_FILE
from site_agent.ingest.store import CaseStore
from site_agent.privacy.budget import current_spend
from site_agent.privacy.ledger import Ledger
from tests.site_agent.conftest import TrainedSite

PLAN = DPRun(2.0, 0.2, 10, 1e-5, "rdp")
# Another process spends while the backups are taken: a reservation after another, as fast as it can.
WRITER = """
import sys
from pathlib import Path
from shared.privacy import DPRun
from site_agent.privacy.ledger import Ledger
ledger = Ledger(Path(sys.argv[1]))
for n in range(80):
    plan = DPRun(2.0, 0.2, 10, 1e-5, "rdp")
    ledger.reserve(run_id=f"busy-{n}", round_id="busy", plan=plan, max_grad_norm=1.0)
"""


def _site_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "site_agent", *args], capture_output=True, text=True, check=False, timeout=120
    )


def _member(archive: Path, name: str) -> bytes:
    with tarfile.open(archive) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


def test_backups_taken_while_a_site_spends_restore_a_lost_site_whole(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    site = trained_site.copy(tmp_path / "site")
    settings = site.settings
    ledger = settings.paths.ledger
    if not settings.federation.private_key.exists():
        generate_site_key(settings.federation.private_key)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(ledger)])
    archives = []
    try:
        while len(Ledger(ledger).events()) < 20:
            assert writer.poll() is None, "the writer stopped before it wrote 20 events"
            time.sleep(0.01)
        for _ in range(3):
            archives.append(backup(settings, site.config, tmp_path / "backups").archive)
    finally:
        assert writer.wait(timeout=120) == 0
    final = ledger.read_bytes()
    for archive in archives:
        assert archive.stat().st_mode & 0o077 == 0  # owner-only: it holds the site's secrets
        copied = _member(archive, "ledger.jsonl")
        assert copied.endswith(b"\n") and final.startswith(copied)  # whole events, none torn or lost
    assert len({_member(a, "ledger.jsonl") for a in archives}) > 1  # taken while the ledger grew

    # The site's disk is lost. On a new machine, the last backup brings back everything it holds.
    newest = archives[-1]
    rebuilt = tmp_path / "rebuilt" / "site.toml"
    done = _site_agent("restore", str(newest), "--config", str(rebuilt))
    assert done.returncode == 0, done.stderr
    assert "Restored site " + settings.site_id in done.stdout
    restored = Ledger(rebuilt.parent / "privacy" / "ledger.jsonl")
    assert restored.path.read_bytes() == _member(newest, "ledger.jsonl")
    manifest = json.loads(_member(newest, "manifest.json"))
    assert current_spend(load_site_settings(rebuilt)).epsilon == pytest.approx(manifest["ledger"]["epsilon"])
    secret = rebuilt.parent / "store" / SECRET_FILE
    assert secret.read_bytes() == (settings.paths.store / SECRET_FILE).read_bytes()
    assert secret.stat().st_mode & 0o077 == 0
    # Its case index names files that went with the disk: it is not put back (ingesting the
    # studies again rebuilds it under the same ids); with the store folder restored first, it is.
    assert not (rebuilt.parent / "store" / "index.sqlite").exists()
    assert "case files it names are not in" in done.stdout
    shutil.copytree(settings.paths.store / "cases", rebuilt.parent / "store" / "cases")
    assert restore(newest, rebuilt).restored[-1] == "index.sqlite"
    with CaseStore(rebuilt.parent / "store") as store, CaseStore(settings.paths.store) as original:
        assert store.all_latest() == original.all_latest()
    assert (
        rebuilt.parent / "certs" / "site.key"
    ).read_bytes() == settings.federation.private_key.read_bytes()
    log = [json.loads(line) for line in (rebuilt.parent / "logs" / "restore.jsonl").read_text().splitlines()]
    assert log[-1]["archive"] == newest.name and log[-1]["events_forgotten"] == 0


def test_a_backup_that_would_forget_spend_is_refused_unless_the_operator_says_why(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    site = trained_site.copy(tmp_path / "site")
    settings = site.settings
    ledger = settings.paths.ledger
    older = backup(settings, site.config, tmp_path / "backups").archive
    Ledger(ledger).reserve(run_id="after-backup", round_id="r9", plan=PLAN, max_grad_norm=1.0)
    before = {p: p.read_bytes() for p in (ledger, site.config, settings.paths.store / SECRET_FILE)}
    spent = current_spend(settings).epsilon

    check = _site_agent("restore", str(older), "--config", str(site.config), "--check")
    refused = _site_agent("restore", str(older), "--config", str(site.config))
    for done in (check, refused):
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert "records 1 event(s) that the backup's ledger lacks" in done.stderr
        assert "would forget spend" in done.stderr and "Nothing was changed" in done.stderr
    assert {p: p.read_bytes() for p in before} == before  # not one byte changed
    assert current_spend(settings).epsilon == spent

    accepted = _site_agent(
        "restore",
        str(older),
        "--config",
        str(site.config),
        "--accept-less-spend",
        "r9 was a dry run on a test ledger",
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "lacks 1 event(s)" in accepted.stderr  # said out loud
    assert current_spend(settings).epsilon < spent
    (kept,) = ledger.parent.glob("ledger.jsonl.replaced-*")
    assert kept.read_bytes() == before[ledger]  # the ledger it replaced is kept whole
    (entry,) = [json.loads(line) for line in (settings.paths.logs / "restore.jsonl").read_text().splitlines()]
    assert (
        entry["events_forgotten"] == 1 and entry["accepted_less_spend"] == "r9 was a dry run on a test ledger"
    )

    # A backup that holds every event restores without a word, and keeps the site's sound index.
    newer = backup(settings, site.config, tmp_path / "backups").archive
    index = (settings.paths.store / "index.sqlite").read_bytes()
    summary = restore(newer, site.config)
    assert summary.missing_events == 0 and summary.kept == ("index.sqlite: the site's own is sound",)
    assert ledger.read_bytes() == _member(newer, "ledger.jsonl")
    assert (settings.paths.store / "index.sqlite").read_bytes() == index


def test_a_damaged_a_foreign_or_a_busy_restore_changes_nothing(
    trained_site: TrainedSite, tmp_path: Path
) -> None:
    site = trained_site.copy(tmp_path / "site")
    settings = site.settings
    archive = backup(settings, site.config, tmp_path / "backups").archive
    before = settings.paths.ledger.read_bytes()

    # One byte of the ledger flipped inside the archive: the manifest's checksum catches it.
    data = bytearray(archive.read_bytes())
    at = bytes(data).index(b'"event"')
    data[at + 2] ^= 0x01
    damaged = tmp_path / "damaged.tar"
    damaged.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=r"ledger\.jsonl does not match its checksum"):
        restore(damaged, site.config)

    # Another site's backup is not restored over this one.
    other = trained_site.copy(tmp_path / "other")
    text = other.config.read_text().replace(f'site_id = "{settings.site_id}"', 'site_id = "elsewhere"')
    other.config.write_text(text)
    foreign = backup(other.settings, other.config, tmp_path / "backups").archive
    with pytest.raises(BackupError, match="is a backup of site 'elsewhere'"):
        restore(foreign, site.config)

    # Not while a training holds the site's training lock.
    lock = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
            str(settings.paths.ledger.with_name(".training.lock")),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert lock.stdout is not None and lock.stdout.readline().strip() == "held"
        with pytest.raises(BackupError, match="a training runs at this site"):
            restore(archive, site.config)
    finally:
        lock.kill()
        lock.wait()
    assert settings.paths.ledger.read_bytes() == before
    assert not list(settings.paths.ledger.parent.glob("*.replaced-*"))
    assert not list(tmp_path.rglob(".restore-*")) and not list(tmp_path.rglob("*.restoring"))

    # A tar that is not a backup at all.
    stray = tmp_path / "stray.tar"
    with tarfile.open(stray, "w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(BackupError, match="is not part of a fedsynth backup"):
        restore(stray, site.config)
    assert not (tmp_path / "escape.txt").exists() and os.listdir(tmp_path)
