"""Broken DICOM in bulk against `site-agent ingest`: `python -m bench.fuzz [--files N] [--batch M]`.

Hospitals send broken files every day. This throws N files (default 30,000, over 10,000 of them
broken) at ingestion, in batches of M into one site's store, each batch a real `site-agent ingest`
process, and reports:

- crashes: a batch whose process ended other than 0 (all stored), 1 (some refused) or 3 (nothing
  stored), or printed a traceback;
- hangs: a batch that did not finish within --batch-timeout seconds;
- memory: the largest resident set of any ingest process (or worker) over the run;
- the store's integrity at the end: it opens, every case in it loads, and it holds exactly the
  cases the batches' reports said they stored.

Each batch holds whole phantom studies under fresh UIDs (so series group as in a real export):
30% of them intact, the others with half their files broken by one mutation each,
plus files that are not DICOM at all, empty files, and symlink loops. The mutations: truncation
anywhere, bytes flipped in the header, a tag's VR or length rewritten in place, absurd Rows /
Columns / NumberOfFrames / BitsAllocated, pixel data removed; and 5% of studies whose every
header claims a 65535 x 65535 matrix (believed, that allocates 16 GiB a slice).

Results go to bench/results/fuzz.json (or --out). The suite runs a bounded sample
(tests/bench/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import generate_uid

from bench.common import environment, write_result

SEED_STUDIES = 3
SEED_MATRIX = 64
SEED_SLICE_MM = 8.0
INTACT_STUDIES = 0.3  # studies left whole
BROKEN_SHARE = 1 / 2  # of the files of each other study
HUGE_STUDIES = 0.05  # studies whose every header claims a 65535 x 65535 matrix
GOOD_EXIT_CODES = {0, 1, 3}  # all stored, some refused, nothing stored

# (group, element) of tags worth breaking, as they appear in an explicit-VR little-endian file.
TAGS = {
    "Rows": (0x0028, 0x0010),
    "Columns": (0x0028, 0x0011),
    "BitsAllocated": (0x0028, 0x0100),
    "PixelSpacing": (0x0028, 0x0030),
    "ImagePositionPatient": (0x0020, 0x0032),
    "ImageOrientationPatient": (0x0020, 0x0037),
    "SOPClassUID": (0x0008, 0x0016),
    "Modality": (0x0008, 0x0060),
    "RescaleSlope": (0x0028, 0x1053),
    "PixelData": (0x7FE0, 0x0010),
}
VRS = [b"AE", b"CS", b"DS", b"FD", b"IS", b"OB", b"OW", b"SQ", b"UI", b"UL", b"UN", b"US", b"ZZ"]


def _tag_offset(data: bytes, name: str) -> int | None:
    group, element = TAGS[name]
    needle = group.to_bytes(2, "little") + element.to_bytes(2, "little")
    offset = data.find(needle, 132)  # past the preamble and "DICM"
    return offset if offset >= 0 else None


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(0, len(data))]


def flip_header(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(0, min(len(out), 1500))] ^= 1 << rng.randrange(8)
    return bytes(out)


def wrong_vr(data: bytes, rng: random.Random) -> bytes:
    offset = _tag_offset(data, rng.choice(list(TAGS)))
    if offset is None:
        return flip_header(data, rng)
    return data[: offset + 4] + rng.choice(VRS) + data[offset + 6 :]


def wrong_length(data: bytes, rng: random.Random) -> bytes:
    offset = _tag_offset(data, rng.choice(list(TAGS)))
    if offset is None:
        return flip_header(data, rng)
    long_form = data[offset + 4 : offset + 6] in (b"OB", b"OW", b"SQ", b"UN", b"UT")
    start, size = (offset + 8, 4) if long_form else (offset + 6, 2)
    value = rng.choice([0, 1, 3, 2 ** (8 * size) - 1, rng.randrange(2 ** (8 * size))])
    return data[:start] + value.to_bytes(size, "little") + data[start + size :]


def _rewritten(
    change: Callable[[pydicom.Dataset, random.Random], None],
) -> Callable[[Path, random.Random], None]:
    def mutate(path: Path, rng: random.Random) -> None:
        ds = pydicom.dcmread(path)
        change(ds, rng)
        ds.save_as(path, enforce_file_format=False)

    return mutate


def _absurd_dimensions(ds: pydicom.Dataset, rng: random.Random) -> None:
    choice = rng.randrange(4)
    if choice == 0:
        ds.Rows = ds.Columns = rng.choice([0, 1, 65535])
    elif choice == 1:
        ds.NumberOfFrames = str(rng.choice([0, 2, 10**9]))
    elif choice == 2:
        ds.BitsAllocated = rng.choice([0, 1, 64])
    else:
        ds.Columns = 65535  # rows sane, columns absurd
        ds.Rows = 512


def _huge_matrix(ds: pydicom.Dataset, rng: random.Random) -> None:
    ds.Rows = ds.Columns = 65535


def _no_pixels(ds: pydicom.Dataset, rng: random.Random) -> None:
    del ds.PixelData


# Mutations of a file's bytes; the dataset-level ones rewrite the file through pydicom.
BYTE_MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": truncate,
    "flip-header": flip_header,
    "wrong-vr": wrong_vr,
    "wrong-length": wrong_length,
}
DATASET_MUTATIONS = {
    "absurd-dimensions": _rewritten(_absurd_dimensions),
    "no-pixel-data": _rewritten(_no_pixels),
}
RANDOM_MUTATIONS = [*BYTE_MUTATIONS, *DATASET_MUTATIONS]
DATASET_MUTATIONS["huge-series"] = _rewritten(_huge_matrix)  # applied to whole studies only


def seed_studies(work: Path, seed: int) -> list[Path]:
    from shared.phantom import PhantomRequest, write_phantom

    out = work / "seed"
    if not out.exists():
        write_phantom(
            PhantomRequest(
                out=out,
                cases=SEED_STUDIES,
                profile="site_a",
                seed=seed,
                matrix=SEED_MATRIX,
                slice_mm=SEED_SLICE_MM,
            )
        )
    return sorted(p for p in out.iterdir() if p.is_dir() and p.name.startswith("study_"))


def _fresh_study(study: Path, into: Path) -> list[Path]:
    """A copy of `study` under new UIDs and a new patient: another hospital's study."""
    into.mkdir(parents=True)
    study_uid, series_uid, patient = generate_uid(), generate_uid(), f"FUZZ-{generate_uid()[-12:]}"
    written = []
    for source in sorted(p for p in study.iterdir() if p.is_file()):
        ds = pydicom.dcmread(source)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = study_uid, series_uid, patient
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        target = into / source.name
        ds.save_as(target, enforce_file_format=True)
        written.append(target)
    return written


def _junk(folder: Path, rng: random.Random, kinds: Counter[str]) -> int:
    """Files that are not DICOM at all, empty files, and symlink loops; returns how many."""
    folder.mkdir(parents=True)
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "noise.dcm").write_bytes(rng.randbytes(rng.randrange(1, 4096)))
    (folder / "README.txt").write_text("exported by PACS\n")
    (folder / "preamble-only.dcm").write_bytes(b"\0" * 128 + b"DICM")
    os.symlink("loop-b", folder / "loop-a")
    os.symlink("loop-a", folder / "loop-b")
    os.symlink("..", folder / "parent-loop")  # a directory link back up: a walk must not follow it
    os.symlink("missing-target", folder / "dangling")
    for kind in ("empty", "noise", "text", "preamble-only", "symlink-loop", "symlink-loop", "dir-loop"):
        kinds[kind] += 1
    kinds["dangling-link"] += 1
    return 8


def build_batch(folder: Path, studies: list[Path], size: int, rng: random.Random) -> tuple[int, Counter[str]]:
    kinds: Counter[str] = Counter()
    count = _junk(folder / "junk", rng, kinds)
    n = 0
    while count < size:
        files = _fresh_study(rng.choice(studies), folder / f"study-{n:03d}")
        n += 1
        draw = rng.random()
        intact_study = draw < INTACT_STUDIES  # stored, so the store's integrity means something
        if draw > 1 - HUGE_STUDIES:  # every header of the series agrees on an absurd matrix
            for path in files:
                DATASET_MUTATIONS["huge-series"](path, rng)
            kinds["huge-series"] += len(files)
            count += len(files)
            continue
        for path in files:
            if count >= size:
                path.unlink()
                continue
            count += 1
            if intact_study or rng.random() >= BROKEN_SHARE:
                kinds["intact"] += 1
                continue
            name = rng.choice(RANDOM_MUTATIONS)
            if name in BYTE_MUTATIONS:
                path.write_bytes(BYTE_MUTATIONS[name](path.read_bytes(), rng))
            else:
                DATASET_MUTATIONS[name](path, rng)
            kinds[name] += 1
    return count, kinds


def run_batch(folder: Path, config: Path, report: Path, timeout_s: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "site_agent", "ingest", str(folder), "--config", str(config)]
    started = time.monotonic()
    try:
        result = subprocess.run(
            [*command, "--report", str(report)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"hang": True, "seconds": round(time.monotonic() - started, 1)}
    crashed = result.returncode not in GOOD_EXIT_CODES or "Traceback" in result.stderr
    outcome: dict[str, Any] = {
        "hang": False,
        "crash": crashed,
        "exit_code": result.returncode,
        "seconds": round(time.monotonic() - started, 1),
    }
    if crashed:
        outcome["stderr_tail"] = result.stderr[-2000:]
    if report.exists():
        written = json.loads(report.read_text())
        outcome["stored"] = sum(1 for c in written["accepted"] if c["status"] in ("new", "new-version"))
        outcome["refused"] = len(written["refused"]) + len(written["unreadable_files"])
    return outcome


def store_integrity(store_dir: Path, stored_by_reports: int) -> dict[str, Any]:
    from site_agent.ingest.store import CaseStore

    problems = []
    with CaseStore(store_dir) as store:
        records = store.all_latest()
        for record in records:
            try:
                _, image, _ = store.load(record.case_id)
                if image.shape != tuple(record.shape):
                    problems.append(f"{record.case_id}: shape {image.shape} != {record.shape}")
            except Exception as exc:
                problems.append(f"{record.case_id}: {type(exc).__name__}: {exc}")
    if len(records) != stored_by_reports:
        problems.append(f"the store holds {len(records)} cases, the reports stored {stored_by_reports}")
    return {"cases": len(records), "intact": not problems, "problems": problems}


def fuzz(work: Path, files: int, batch: int, seed: int, timeout_s: float) -> dict[str, Any]:
    from site_agent.site_toml import write_site_toml

    rng = random.Random(seed)
    studies = seed_studies(work, seed)
    site = work / "site"
    shutil.rmtree(site, ignore_errors=True)
    config = write_site_toml(site, "fuzz-site")
    kinds: Counter[str] = Counter()
    batches: list[dict[str, Any]] = []
    tried = 0
    started = time.monotonic()
    while tried < files:
        folder = work / "batches" / f"batch-{len(batches):03d}"
        shutil.rmtree(folder, ignore_errors=True)
        count, batch_kinds = build_batch(folder, studies, min(batch, files - tried), rng)
        kinds += batch_kinds
        tried += count
        outcome = run_batch(folder, config, work / "reports" / f"{folder.name}.json", timeout_s)
        outcome["files"] = count
        batches.append(outcome)
        shutil.rmtree(folder)
        print(
            f"batch {len(batches)}: {count} files, {outcome['seconds']} s, "
            f"{'HANG' if outcome['hang'] else 'CRASH' if outcome['crash'] else 'ok'}",
            flush=True,
        )
    stored = sum(b.get("stored", 0) for b in batches)
    return {
        "files_tried": tried,
        "broken_files": tried - kinds["intact"],
        "batches": len(batches),
        "batch_size": batch,
        "crashes": sum(1 for b in batches if b.get("crash")),
        "hangs": sum(1 for b in batches if b["hang"]),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, 1),
        "store": store_integrity(site / "store", stored),
        "seconds": round(time.monotonic() - started, 1),
        "inputs": dict(sorted(kinds.items())),
        "per_batch": batches,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30_000, help="files in all, about 40%% broken")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-timeout", type=float, default=300.0)
    parser.add_argument("--work", type=Path, default=None, help="default: a fresh temporary folder")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/fuzz.json")
    args = parser.parse_args(argv)
    work = args.work or Path(os.environ.get("TMPDIR", "/tmp")) / f"fedsynth-fuzz-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    result = fuzz(work, args.files, args.batch, args.seed, args.batch_timeout)
    payload = {"command": "python -m bench.fuzz " + " ".join(argv or sys.argv[1:]), **result}
    if args.out is not None:
        args.out.write_text(
            json.dumps({"benchmark": "fuzz", "environment": environment(), **payload}, indent=2)
        )
    else:
        print(f"wrote {write_result('fuzz', payload)}")
    print(
        f"{result['files_tried']} files ({result['broken_files']} broken) in {result['batches']} batches: "
        f"{result['crashes']} crashes, "
        f"{result['hangs']} hangs, peak {result['peak_rss_mb']} MB, store "
        f"{'intact' if result['store']['intact'] else 'DAMAGED'} ({result['store']['cases']} cases)"
    )
    return result


if __name__ == "__main__":
    main()
