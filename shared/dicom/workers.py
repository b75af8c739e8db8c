"""The process pool that reads DICOM headers on every core.

pydicom parses in pure Python, so threads cannot overlap it; processes can. The pool is started
once (forkserver, with the readers already imported, so no worker inherits this process's threads
or torch state) and reused for every series of a run. Small jobs stay in this process: starting
work elsewhere only pays for enough files. (Pixels are decoded by threads: see `load_hu`.)
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

T = TypeVar("T")

MIN_FILES_FOR_POOL = 48
_pool: ProcessPoolExecutor | None = None


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def pool_for(files: int) -> ProcessPoolExecutor | None:
    """The shared pool, or None when the job is too small or there is one core."""
    global _pool
    if files < MIN_FILES_FOR_POOL or cores() < 2:
        return None
    if _pool is not None and getattr(_pool, "_broken", False):
        discard_pool()  # a worker died (out of memory, killed): start a fresh pool
    if _pool is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["shared.dicom.scan", "shared.dicom.volume"])
        _pool = ProcessPoolExecutor(max_workers=min(cores(), 8), mp_context=context)
        atexit.register(_pool.shutdown, cancel_futures=True)
    return _pool


def chunks(count: int, parts: int) -> list[range]:
    step = -(-count // parts)
    return [range(start, min(start + step, count)) for start in range(0, count, step)]


def discard_pool() -> None:
    """Forget a pool that failed; the next job starts a new one."""
    global _pool
    if _pool is not None:
        survivors = list((getattr(_pool, "_processes", None) or {}).values())
        _pool.shutdown(wait=False, cancel_futures=True)
        # Workers of a broken pool can stay blocked on its queue for ever (each holds the queue's
        # write end too): stop them, or they outlive this process.
        for process in survivors:
            if process.is_alive():
                process.terminate()
        _pool = None


def run_with_fallback(pooled: Callable[[ProcessPoolExecutor], T], local: Callable[[], T], files: int) -> T:
    """Run on the pool when it pays; if a worker dies, do the job here instead of failing the series."""
    pool = pool_for(files)
    if pool is None:
        return local()
    try:
        return pooled(pool)
    except BrokenProcessPool:
        discard_pool()
        return local()
