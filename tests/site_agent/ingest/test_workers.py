"""The worker pool: same results as one process, and a dead worker never fails a series."""

from __future__ import annotations

import os
import signal

import numpy as np

import shared.dicom.workers as workers
from shared.dicom.checks import check_series
from shared.dicom.scan import scan
from shared.dicom.volume import load_hu
from shared.phantom import PhantomSummary, read_labels


def _series(phantom_site: PhantomSummary):  # type: ignore[no-untyped-def]
    folder = phantom_site.out / read_labels(phantom_site.out)[0]["folder"]
    found = scan(folder)
    return check_series(found.series[0], min_slices=10)


def test_pool_and_one_process_agree_and_a_killed_worker_is_survived(
    phantom_site: PhantomSummary, monkeypatch
) -> None:
    geometry = _series(phantom_site)
    assert len(geometry.instances) >= workers.MIN_FILES_FOR_POOL or workers.cores() < 2
    monkeypatch.setattr(workers, "MIN_FILES_FOR_POOL", 10**9)
    alone = load_hu(geometry)
    monkeypatch.setattr(workers, "MIN_FILES_FOR_POOL", 8)
    pooled = load_hu(geometry)
    assert np.array_equal(alone.hu, pooled.hu) and alone.fingerprint == pooled.fingerprint
    if workers.cores() < 2:
        return  # nothing runs in a pool on one core
    pool = workers._pool
    assert pool is not None
    victim = next(iter(pool._processes))  # type: ignore[attr-defined]
    os.kill(victim, signal.SIGKILL)
    again = load_hu(geometry)  # the series is decoded anyway, here or on a fresh pool
    assert np.array_equal(again.hu, alone.hu)
    after = load_hu(geometry)
    assert np.array_equal(after.hu, alone.hu)


def test_a_small_dev_shm_is_not_used(phantom_site: PhantomSummary, monkeypatch, tmp_path) -> None:
    """With too little RAM disk (Docker gives 64 MB), workers write to disk instead of dying."""
    import shutil as shutil_module

    import shared.dicom.volume as volume

    geometry = _series(phantom_site)
    reference = load_hu(geometry).hu.copy()
    real_usage = shutil_module.disk_usage

    def tiny_dev_shm(path):  # type: ignore[no-untyped-def]
        usage = real_usage(path)
        return usage._replace(free=1024) if str(path) == "/dev/shm" else usage

    monkeypatch.setattr(volume.shutil, "disk_usage", tiny_dev_shm)
    monkeypatch.setattr(volume.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(workers, "MIN_FILES_FOR_POOL", 8)
    assert volume._shared_folder(10_000_000) == tmp_path
    assert np.array_equal(load_hu(geometry).hu, reference)
