"""How fast the phantom makes studies: `python -m bench.phantom [--repeats N]`.

Two sizes: realistic (512 x 512, 1 mm and 2 mm slices over the whole thorax, as hospitals send)
and demo (96 x 96, 5 mm slices, what the demo and tests use). For each, the median over repeats of
the time to generate one study in memory and to write it as DICOM plus its NIfTI mask, studies per
second and megabytes of DICOM per second. Then a whole phantom hospital at realistic size written
with one worker process and with one per core, in the same run, for the speed-up `--jobs` gives.
Results go to bench/results/phantom.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import peak_rss_mb, write_result
from shared.phantom import PROFILES, PhantomRequest, generate_study, write_phantom
from shared.phantom.dicom_io import spec_for_study, write_series
from shared.phantom.nifti_io import write_mask

SIZES = {
    "realistic_1mm": {"profile": "site_a", "matrix": 512, "slice_mm": 1.0},
    "realistic_2mm": {"profile": "external", "matrix": 512, "slice_mm": 2.0},
    "demo": {"profile": "site_b", "matrix": 96, "slice_mm": 5.0},
}
LABELS = ("thymoma", "neurogenic_tumour", "benign_cyst", "germ_cell_tumour", "thymic_carcinoma", "normal")


def measure(size: dict, repeats: int, scratch: Path) -> dict:
    generate_s, write_s, megabytes, slices = [], [], [], []
    profile = PROFILES[size["profile"]]
    for n in range(repeats):
        label = LABELS[n % len(LABELS)]
        t0 = time.perf_counter()
        study = generate_study(
            profile, label, seed=7, index=n + 1, matrix=size["matrix"], slice_mm=size["slice_mm"]
        )
        t1 = time.perf_counter()
        folder = scratch / f"s{n}"
        paths = write_series(
            folder, spec_for_study(study), study.identity, profile, contrast=study.body.contrast
        )
        write_mask(scratch / f"s{n}.nii.gz", study.mask, study.grid)
        t2 = time.perf_counter()
        generate_s.append(t1 - t0)
        write_s.append(t2 - t1)
        megabytes.append(sum(p.stat().st_size for p in paths) / 1e6)
        slices.append(study.grid.shape[0])
        shutil.rmtree(folder)
    total = [g + w for g, w in zip(generate_s, write_s, strict=True)]
    median_total = statistics.median(total)
    return {
        **size,
        "repeats": repeats,
        "slices_median": statistics.median(slices),
        "dicom_mb_median": round(statistics.median(megabytes), 2),
        "generate_s_median": round(statistics.median(generate_s), 3),
        "write_s_median": round(statistics.median(write_s), 3),
        "total_s_median": round(median_total, 3),
        "studies_per_s": round(1.0 / median_total, 3),
        "dicom_mb_per_s": round(statistics.median(megabytes) / median_total, 2),
    }


def measure_jobs(cases: int, scratch: Path) -> dict:
    cores = os.cpu_count() or 1
    seconds = {}
    for jobs in sorted({1, cores}):
        out = scratch / f"jobs{jobs}"
        request = PhantomRequest(
            out=out, cases=cases, profile="external", seed=5, matrix=512, slice_mm=2.0, jobs=jobs
        )
        t0 = time.perf_counter()
        write_phantom(request)
        seconds[jobs] = time.perf_counter() - t0
        shutil.rmtree(out)
    return {
        "cases": cases,
        "size": "512 x 512, 2 mm (external)",
        "seconds_by_jobs": {str(k): round(v, 2) for k, v in seconds.items()},
        "speedup": round(seconds[1] / seconds[cores], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="studies per realistic size (demo size: 4x)")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="fedsynth-bench-") as tmp:
        for name, size in SIZES.items():
            repeats = args.repeats * (4 if name == "demo" else 1)
            results[name] = measure(size, repeats, Path(tmp))
            print(f"{name}: {results[name]}")
        jobs = measure_jobs(2 * args.repeats, Path(tmp))
        print(f"jobs: {jobs}")
    path = write_result("phantom", {"sizes": results, "jobs": jobs, "peak_rss_mb": round(peak_rss_mb(), 1)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
