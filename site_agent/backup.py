"""Backups that keep the privacy promise: `site-agent backup` and `site-agent restore`.

One archive holds what a site cannot rebuild: the privacy ledger (lose it and the site forgets
what it has spent), the pseudonym secret (lose it and every re-ingested study gets a new case id),
the case store's index, the settings and the site's key pair. Patient images are not in it: they
are re-read from PACS, and the hospital's own storage backups cover the store's folder if wanted.

- **Consistent while the agent runs.** The ledger is copied under its own lock (no event half in,
  no torn line), the index with SQLite's online backup; a training or an answer may go on.
- **Verified.** A manifest holds each file's sha256, the site id and what the ledger holds; a
  restore checks every file, and the ledger's own line checksums, before it changes anything.
- **Never less spend.** A restore replaces a ledger only with one that holds every event the
  current one records (every readable line of a damaged one counts). Anything else would let the
  site spend again what it already spent, so it is refused unless the operator passes
  `--accept-less-spend REASON`, which is logged with the reason in `logs/restore.jsonl`.
- **Nothing lost.** Every file a restore replaces is kept beside it as `NAME.replaced-<time>`. The
  case index is put back only when the current one is missing or damaged: a working index
  describes the case files on disk, and an older one would orphan the newer cases.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared import __version__
from shared.hashing import file_sha256
from shared.process_lock import held_alone
from site_agent.config import SiteSettings, load_site_settings
from site_agent.errors import SiteAgentError
from site_agent.ingest.pseudonyms import SECRET_FILE
from site_agent.privacy.ledger import Ledger, LedgerError, readable_events, total_spend

FORMAT = 1
MANIFEST = "manifest.json"
LEDGER, SECRET, INDEX, SETTINGS, KEY, PUBLIC_KEY = (
    "ledger.jsonl",
    "site-secret",
    "index.sqlite",
    "site.toml",
    "site.key",
    "site.pub",
)
MEMBERS = (LEDGER, SECRET, INDEX, SETTINGS, KEY, PUBLIC_KEY)
RESTORE_LOG = "restore.jsonl"


class BackupError(SiteAgentError):
    """A backup could not be written, or an archive cannot be restored (damaged, another site's,
    or one that would forget spend)."""


@dataclass(frozen=True)
class BackupSummary:
    archive: Path
    site_id: str
    files: tuple[str, ...]
    ledger_events: int
    epsilon: float


@dataclass(frozen=True)
class RestoreSummary:
    site_id: str
    restored: tuple[str, ...]  # what was put in place
    kept: tuple[str, ...]  # what the backup held but the site's own copy was kept of, and why
    replaced: tuple[Path, ...]  # where each replaced file now is
    ledger_events: int
    missing_events: int  # events of the replaced ledger the backup lacks (0 unless accepted)


def _stamp() -> str:
    # Microseconds: two backups (or restores) in one second must not take each other's name.
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _spend(settings: SiteSettings, ledger: Path) -> float:
    privacy = settings.privacy
    runs = Ledger(ledger).runs()
    return total_spend(
        runs, delta=privacy.delta, accountant=privacy.accountant, cap=privacy.epsilon_cap
    ).epsilon


def _index_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while the store is being written."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def backup(settings: SiteSettings, config: Path, dest: Path) -> BackupSummary:
    """Write `dest/fedsynth-backup-<site>-<time>.tar` (owner-only) and return what it holds."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / f"fedsynth-backup-{settings.site_id}-{_stamp()}.tar"
    store = settings.paths.store
    key = settings.federation.private_key
    with tempfile.TemporaryDirectory(dir=dest, prefix=".backup-") as scratch:
        staged = Path(scratch)
        events = Ledger(settings.paths.ledger).snapshot(staged / LEDGER)
        sources = {
            SECRET: store / SECRET_FILE,
            SETTINGS: config,
            KEY: key,
            PUBLIC_KEY: key.with_suffix(".pub"),
        }
        for name, source in sources.items():
            if source.is_file():
                shutil.copyfile(source, staged / name)
        if (store / "index.sqlite").is_file():
            _index_copy(store / "index.sqlite", staged / INDEX)
        files = tuple(name for name in MEMBERS if (staged / name).is_file())
        epsilon = _spend(settings, staged / LEDGER)
        manifest = {
            "format": FORMAT,
            "site_id": settings.site_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "fedsynth": __version__,
            "files": {name: file_sha256(staged / name) for name in files},
            "ledger": {"events": events, "epsilon": None if epsilon == float("inf") else epsilon},
        }
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        partial = archive.with_name(f".{archive.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w") as tar:
                for name in (MANIFEST, *files):
                    tar.add(staged / name, arcname=name, recursive=False)
            raw.flush()
            os.fsync(raw.fileno())
        partial.replace(archive)  # a backup is whole, or not there
    return BackupSummary(archive, settings.site_id, files, events, epsilon)


def _unpack(archive: Path, into: Path) -> dict[str, Any]:
    """The archive's files in `into`, each checked against the manifest; its manifest."""
    if not archive.is_file():
        raise BackupError(f"{archive}: no such backup file")
    try:
        with tarfile.open(archive, mode="r:") as tar:
            for member in tar.getmembers():
                if member.name not in (MANIFEST, *MEMBERS) or not member.isfile():
                    raise BackupError(f"{archive}: {member.name!r} is not part of a fedsynth backup")
                source = tar.extractfile(member)
                assert source is not None  # a regular file, checked above
                with source, (into / member.name).open("wb") as target:
                    shutil.copyfileobj(source, target)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupError(f"{archive}: not a readable fedsynth backup ({exc})") from None
    try:
        manifest: dict[str, Any] = json.loads((into / MANIFEST).read_text())
        files: dict[str, str] = manifest["files"]
        site_id = manifest["site_id"]
    except (OSError, ValueError, KeyError, TypeError):
        raise BackupError(f"{archive}: its manifest is missing or damaged") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{archive}: backup format {manifest.get('format')!r}, this agent reads {FORMAT}")
    for name in MEMBERS:
        present = (into / name).is_file()
        if present != (name in files) or (present and file_sha256(into / name) != files[name]):
            raise BackupError(f"{archive}: {name} does not match its checksum in the manifest (damaged)")
    if not isinstance(site_id, str) or LEDGER not in files or SETTINGS not in files:
        raise BackupError(f"{archive}: its manifest names no site, ledger or settings")
    return manifest


def _index_is_sound(index: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{index}?mode=ro", uri=True) as db:
            ok = db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        return bool(ok)
    except sqlite3.Error:
        return False


def _index_note(backed_up: Path, index: Path, store: Path) -> str:
    """Why the backup's case index is not put back, or "" when it is: only in place of a missing
    or damaged index, and only when every case file it names is in the store. An index whose files
    are gone would make the store claim cases it cannot load, and ingesting the studies again would
    find them "already stored"; without it, ingesting again rebuilds the index under the same case
    ids (the secret is restored)."""
    if index.exists() and _index_is_sound(index):
        return "the site's own is sound"
    with contextlib.closing(sqlite3.connect(f"file:{backed_up}?mode=ro", uri=True)) as db:
        files = [row[0] for row in db.execute("SELECT file FROM cases")]
    missing = sum(not (store / name).is_file() for name in files)
    if missing:
        return (
            f"not put back: {missing} of the {len(files)} case files it names are not in {store}; "
            "ingest the studies again (same case ids), or restore the store folder first"
        )
    return ""


def _put(source: Path, target: Path, stamp: str, replaced: list[Path], mode: int = 0o600) -> None:
    """`source` at `target` by an atomic rename; a file already there is kept as NAME.replaced-<time>."""
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = target.with_name(f".{target.name}.restoring")
    shutil.copyfile(source, incoming)
    os.chmod(incoming, mode)
    with incoming.open("rb") as fh:
        os.fsync(fh.fileno())
    if target.exists():
        kept = target.with_name(f"{target.name}.replaced-{stamp}")
        os.link(target, kept)  # the old file stays whole under its new name before anything moves
        replaced.append(kept)
    incoming.replace(target)


def restore(
    archive: Path, config: Path, *, accept_less_spend: str = "", check_only: bool = False
) -> RestoreSummary:
    """Put a backup back at the site whose settings file is (or will be) `config`."""
    config.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=config.parent, prefix=".restore-") as scratch:
        staged = Path(scratch)
        manifest = _unpack(archive, staged)
        site_id = manifest["site_id"]
        if config.exists():
            current = load_site_settings(config)
            if current.site_id != site_id:
                raise BackupError(
                    f"{archive} is a backup of site {site_id!r}; {config} is site {current.site_id!r}. "
                    "Nothing was changed."
                )
        # The backup's settings, read from where they will be (their relative paths resolve there).
        probe = config.with_name(f".{config.name}.restoring")
        shutil.copyfile(staged / SETTINGS, probe)
        try:
            settings = load_site_settings(probe)
        finally:
            probe.unlink()
        try:
            events = Ledger(staged / LEDGER).events()
        except LedgerError as exc:
            raise BackupError(
                f"{archive}: its ledger fails its own checksums ({exc}). Nothing was changed."
            ) from None
        ledger = settings.paths.ledger
        held = {_event_key(e) for e in events}
        current_events, damaged_lines = readable_events(ledger)
        missing = [e for e in current_events if _event_key(e) not in held]
        if missing and not accept_less_spend:
            now = "" if damaged_lines else f" (epsilon {_spend(settings, ledger):.3f} there"
            then = f"{now}, {_spend(settings, staged / LEDGER):.3f} in the backup)" if now else ""
            raise BackupError(
                f"the ledger at {ledger} records {len(missing)} event(s) that the backup's ledger "
                f"lacks{then}: restoring it would forget spend, and the site could spend it again. "
                "Nothing was changed. Restore a newer backup; or, if the spend it forgets never "
                "happened, pass --accept-less-spend 'REASON' (logged)."
            )
        store = settings.paths.store
        index = store / "index.sqlite"
        index_note = _index_note(staged / INDEX, index, store) if INDEX in manifest["files"] else ""
        index_wanted = INDEX in manifest["files"] and not index_note
        plan = [
            (staged / SETTINGS, config),
            (staged / LEDGER, ledger),
            (staged / SECRET, store / SECRET_FILE),
            (staged / KEY, settings.federation.private_key),
            (staged / PUBLIC_KEY, settings.federation.private_key.with_suffix(".pub")),
            *([(staged / INDEX, index)] if index_wanted else []),
        ]
        plan = [(source, target) for source, target in plan if source.is_file()]
        kept = (f"{INDEX}: {index_note}",) if index_note else ()
        if check_only:
            return RestoreSummary(
                site_id, tuple(s.name for s, _ in plan), kept, (), len(events), len(missing)
            )
        stamp = _stamp()
        replaced: list[Path] = []
        busy = BackupError("a training runs at this site: stop the agent (and its training) before a restore")
        with held_alone(ledger.with_name(".training.lock"), lambda: busy), Ledger(ledger).held():
            for source, target in plan:
                _put(source, target, stamp, replaced, mode=0o644 if target.suffix == ".pub" else 0o600)
            _log(settings, archive, site_id, len(events), len(missing), accept_less_spend)
    return RestoreSummary(
        site_id, tuple(s.name for s, _ in plan), kept, tuple(replaced), len(events), len(missing)
    )


def _event_key(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True)


def _log(settings: SiteSettings, archive: Path, site_id: str, events: int, missing: int, reason: str) -> None:
    """One line per restore in logs/restore.jsonl; an accepted loss of spend says who wanted it and why."""
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "site_id": site_id,
        "archive": archive.name,
        "ledger_events": events,
        "events_forgotten": missing,
        "accepted_less_spend": reason or None,
    }
    logs = settings.paths.logs
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / RESTORE_LOG).open("a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
