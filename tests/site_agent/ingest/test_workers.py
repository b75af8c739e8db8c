"""The header pool and the decoding threads: same results as one process, and a dead worker
never fails a series."""

from __future__ import annotations

import os
import signal

import numpy as np

import shared.dicom.workers as workers
from shared.dicom.checks import check_series
from shared.dicom.scan import scan
from shared.dicom.volume import load_hu
from shared.phantom import PhantomSummary, read_labels


def test_pool_and_one_process_agree_and_a_killed_worker_is_survived(
    phantom_site: PhantomSummary, monkeypatch
) -> None:
    folder = phantom_site.out / read_labels(phantom_site.out)[0]["folder"]
    monkeypatch.setattr(workers, "MIN_FILES_FOR_POOL", 10**9)
    alone_scan = scan(folder)
    alone = load_hu(check_series(alone_scan.series[0], min_slices=10))
    monkeypatch.setattr(workers, "MIN_FILES_FOR_POOL", 8)  # headers in worker processes, pixels in threads
    pooled_scan = scan(folder)
    assert len(pooled_scan.series[0].instances) >= 8
    assert pooled_scan.series[0].instances == alone_scan.series[0].instances
    pooled = load_hu(check_series(pooled_scan.series[0], min_slices=10))
    assert np.array_equal(alone.hu, pooled.hu) and alone.fingerprint == pooled.fingerprint
    if workers.cores() < 2:
        return  # nothing runs in a pool on one core
    pool = workers._pool
    assert pool is not None
    victim = next(iter(pool._processes))  # type: ignore[attr-defined]
    os.kill(victim, signal.SIGKILL)
    again = scan(folder)  # the headers are read anyway, here or on a fresh pool
    assert again.series[0].instances == alone_scan.series[0].instances
    after = scan(folder)
    assert after.series[0].instances == alone_scan.series[0].instances
    assert np.array_equal(load_hu(check_series(after.series[0], min_slices=10)).hu, alone.hu)
