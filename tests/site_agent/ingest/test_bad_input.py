"""What an unlucky hospital feeds the ingester: odd file names, several broken files in one series,
headers that claim absurd sizes. Each ends in a clear refusal and the rest of the run goes on."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pydicom

from shared.phantom import PhantomSummary, read_labels
from site_agent.config import load_site_settings
from site_agent.ingest.pipeline import ingest
from site_agent.ingest.store import CaseStore


def _copy_studies(phantom_site: PhantomSummary, export: Path, count: int) -> list[Path]:
    """The first `count` labelled studies of the phantom site, copied into `export`."""
    rows = read_labels(phantom_site.out)[:count]
    for row in rows:
        shutil.copytree(phantom_site.out / row["folder"], export / row["folder"])
    return [export / row["folder"] for row in rows]


def _files(study: Path) -> list[Path]:
    return sorted(p for p in study.rglob("*") if p.is_file())


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])


def test_every_broken_file_of_a_series_is_named_and_a_huge_matrix_is_refused_before_reading(
    phantom_site: PhantomSummary, site_config: Path, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    truncated_study, huge_study, good_study = _copy_studies(phantom_site, export, 3)
    victims = _files(truncated_study)[3:6]
    for victim in victims:
        _truncate(victim)
    for path in _files(huge_study):  # every header claims 65535 x 65535: 16 GiB a slice as HU
        ds = pydicom.dcmread(path)
        ds.Rows = ds.Columns = 65535
        ds.save_as(path)

    report = ingest(load_site_settings(site_config), export)

    assert len(report.accepted) == 1  # the good study, whatever the others did
    by_check = {r.check: r for r in report.refused}
    assert set(by_check) == {"pixel-data", "matrix"}
    broken = by_check["pixel-data"]
    assert broken.file_ref is not None and len(broken.other_file_refs) == 2
    assert len({broken.file_ref, *broken.other_file_refs}) == 3
    assert "truncated" in broken.detail and "2 more file(s)" in broken.detail
    assert "65535x65535" in by_check["matrix"].detail
    assert good_study.name not in report.model_dump_json()


def _site_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "site_agent", *args], capture_output=True, text=True, check=False
    )


def test_a_file_name_that_is_not_utf8_is_refused_by_reference_and_located(
    phantom_site: PhantomSummary, site_config: Path, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    (study,) = _copy_studies(phantom_site, export, 1)
    victim = _files(study)[4]
    odd = victim.with_name(os.fsdecode(b"caf\xe9-\xff.dcm"))  # Latin-1 bytes: not UTF-8
    victim.rename(odd)
    _truncate(odd)

    ingested = _site_agent("ingest", str(export), "--config", str(site_config))

    # Nothing stored: the only study was refused, and the exit code says so.
    assert ingested.returncode == 3, ingested.stderr
    assert "Traceback" not in ingested.stderr
    refusal = next(line for line in ingested.stdout.splitlines() if line.startswith("refused"))
    file_ref = refusal.split(", file ")[1].split(")")[0]
    assert file_ref.startswith("file-") and "The store holds 0 case(s)." in ingested.stdout
    located = _site_agent("locate", file_ref, str(export), "--config", str(site_config))
    assert located.returncode == 0, located.stderr
    assert located.stdout.strip().endswith("caf\\xe9-\\xff.dcm")


def _with_file_size_limit(limit: int) -> Callable[[], None]:
    """A file size limit for a child process: the kernel writes up to it and then refuses, as a
    disk that fills up does (EFBIG instead of ENOSPC)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return apply


def test_a_full_disk_mid_ingest_is_one_clear_line_and_the_store_stays_whole(
    phantom_site: PhantomSummary, site_config: Path, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    first, _ = _copy_studies(phantom_site, export, 2)
    settings = load_site_settings(site_config)
    earlier = tmp_path / "earlier"
    shutil.copytree(first, earlier / first.name)
    assert len(ingest(settings, earlier).accepted) == 1
    with CaseStore(settings.paths.store) as store:
        (stored,) = store.all_latest()

    full = subprocess.run(
        [sys.executable, "-m", "site_agent", "ingest", str(export), "--config", str(site_config)],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=_with_file_size_limit(48 * 1024),  # SQLite fits, a case file (65 KB) does not
    )

    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr
    assert "error: the disk refused to write" in full.stderr
    with CaseStore(settings.paths.store) as store:  # reopens cleanly, the earlier case whole
        (still,) = store.all_latest()
        image, _ = store.load(still.case_id)[1:]
    assert still == stored and image.shape == stored.shape
    assert len(ingest(settings, export).accepted) == 2  # space freed: the run completes
