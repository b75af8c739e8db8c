"""A bounded sample of `bench.fuzz` on every run: broken DICOM in bulk, no crash, no hang, the
store intact (the full 10,000-file run is the benchmark's)."""

from __future__ import annotations

from pathlib import Path

from bench.fuzz import BYTE_MUTATIONS, DATASET_MUTATIONS, main


def test_two_hundred_broken_files_crash_nothing_and_leave_the_store_intact(tmp_path: Path) -> None:
    result = main(
        ["--files", "200", "--batch", "100", "--work", str(tmp_path), "--out", str(tmp_path / "f.json")]
    )
    assert result["files_tried"] == 200 and result["batches"] == 2
    assert result["crashes"] == 0 and result["hangs"] == 0, result["per_batch"]
    assert result["store"]["intact"], result["store"]["problems"]
    assert result["store"]["cases"] > 0  # intact studies were stored alongside the broken ones
    tried = set(result["inputs"])
    assert set(BYTE_MUTATIONS) | {"absurd-dimensions", "no-pixel-data", "empty", "symlink-loop"} <= tried
    assert set(DATASET_MUTATIONS) - {"huge-series"} <= tried
