"""How fast a series goes from DICOM files to the stored cube: `python -m bench.ingest [--repeats N]`.

Two series: the real chest CT of ../shared/data/real-ct (64 slices, 512 x 512) and a realistic
phantom study (512 x 512, 2 mm slices over the thorax). For each, medians over repeats, all
measured in this one run so the ratios are fair:

- pydicom: plain `dcmread` of every file with its pixel array, nothing else;
- dcm2niix: Debian's dcm2niix converting the same folder to uncompressed NIfTI;
- read+validate+HU: fedsynth's header scan, series checks and decode to Hounsfield units;
- full preprocessing: that, plus orientation, resampling, mediastinum crop and window (64^3 at 2 mm);
- each with one process, with the worker pool (both cores), and as a site runs it.

Goal (issue 20): read+validate+HU within 1.5x of dcm2niix, as a site runs it (the pool above
`MIN_FILES_FOR_POOL` files, one process below).

Also the share of each phantom lesion's volume that lands inside the stored cube, per class, at
the test size (32^3 at 4 mm) and the default (64^3 at 2 mm): the cube is centred on the mediastinum
from anatomy alone, never from labels, so this says how much of each class a model will see.
Results go to bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pydicom

import shared.dicom.workers as workers
from bench.common import peak_rss_mb, write_result
from shared.crop_box import CPU_BOX, CPU_SPACING_MM, GPU_BOX, GPU_SPACING_MM, box_text
from shared.dicom.checks import check_series
from shared.dicom.scan import scan
from shared.dicom.volume import load_hu
from shared.phantom import PhantomRequest, read_labels, write_phantom
from shared.preprocessing import preprocess
from site_agent.config import SitePreprocessing

GOAL_RATIO = 1.5


def real_ct() -> Path:
    base = os.environ.get("FEDSYNTH_REAL_CT") or str(
        Path(__file__).resolve().parents[2] / "shared" / "data" / "real-ct"
    )
    return Path(base) / "Lung_Dx-A0001"


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    action()  # warm the page cache and the worker pool: steady state is what a site runs in
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(folder: Path, repeats: int) -> dict:
    files = sorted(p for p in folder.iterdir() if p.is_file())

    def plain_pydicom() -> None:
        for path in files:
            pydicom.dcmread(path).pixel_array  # noqa: B018 - decoding is the work measured

    def dcm2niix() -> None:
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(
                ["dcm2niix", "-z", "n", "-o", out, "-f", "volume", str(folder)],
                capture_output=True,
                check=True,
            )

    def read_validate_hu() -> object:
        return load_hu(check_series(scan(folder).series[0], min_slices=10))

    def full() -> object:
        volume = load_hu(check_series(scan(folder).series[0], min_slices=10))
        return preprocess(volume.hu, volume.affine, None, SitePreprocessing())

    result: dict[str, object] = {
        "files": len(files),
        "megabytes": round(sum(p.stat().st_size for p in files) / 1e6, 1),
    }
    result["pydicom_dcmread_s"] = round(median_seconds(plain_pydicom, repeats), 4)
    result["dcm2niix_s"] = round(median_seconds(dcm2niix, repeats), 4)
    modes = (("one_process", 10**9), ("pool", 1), ("as_run", workers.MIN_FILES_FOR_POOL))
    for mode, minimum in modes:
        saved = workers.MIN_FILES_FOR_POOL
        workers.MIN_FILES_FOR_POOL = minimum
        try:
            result[f"read_validate_hu_{mode}_s"] = round(median_seconds(read_validate_hu, repeats), 4)
            result[f"full_preprocessing_{mode}_s"] = round(median_seconds(full, repeats), 4)
        finally:
            workers.MIN_FILES_FOR_POOL = saved
    dcm2niix_s = float(result["dcm2niix_s"])  # type: ignore[arg-type]
    for mode, _ in modes:
        ours = float(result[f"read_validate_hu_{mode}_s"])  # type: ignore[arg-type]
        result[f"read_validate_hu_{mode}_over_dcm2niix"] = round(ours / dcm2niix_s, 2)
        result[f"read_validate_hu_{mode}_over_pydicom"] = round(ours / float(result["pydicom_dcmread_s"]), 2)  # type: ignore[arg-type]
    one_process, pool = result["read_validate_hu_one_process_s"], result["read_validate_hu_pool_s"]
    result["pool_speedup_read_validate_hu"] = round(float(one_process) / float(pool), 2)  # type: ignore[arg-type]
    result["goal_met"] = bool(float(result["read_validate_hu_as_run_over_dcm2niix"]) <= GOAL_RATIO)  # type: ignore[arg-type]
    return result


def lesion_coverage(per_class: int) -> dict[str, dict[str, float]]:
    from shared.classes import DEFAULT_CLASSES, NORMAL
    from shared.phantom import PROFILES, TRAINING_PROFILES, generate_study
    from shared.phantom.nifti_io import site_volume

    sizes = {
        "a 32^3 cube (128 mm) at 4 mm, the first design": SitePreprocessing(box=(32, 32, 32), spacing_mm=4.0),
        f"CPU box {box_text(CPU_BOX)} at {CPU_SPACING_MM:g} mm": SitePreprocessing(
            box=CPU_BOX, spacing_mm=CPU_SPACING_MM
        ),
        f"GPU box {box_text(GPU_BOX)} at {GPU_SPACING_MM:g} mm": SitePreprocessing(
            box=GPU_BOX, spacing_mm=GPU_SPACING_MM
        ),
    }
    result: dict[str, dict[str, float]] = {name: {} for name in sizes}
    for label in (c for c in DEFAULT_CLASSES if c != NORMAL):
        shares: dict[str, list[float]] = {name: [] for name in sizes}
        for n in range(per_class):
            profile = PROFILES[TRAINING_PROFILES[n % len(TRAINING_PROFILES)]]
            study = generate_study(profile, label, seed=500 + n, index=n, matrix=128, slice_mm=3.0)
            hu, affine, mask = site_volume(study)
            lesion_mm3 = float(mask.sum()) * float(
                study.grid.spacing[0] * study.grid.spacing[1] * study.grid.spacing[2]
            )
            for name, settings in sizes.items():
                cropped = preprocess(hu, affine, mask, settings)
                inside = cropped.mask.sum() * settings.spacing_mm**3 if cropped.mask is not None else 0.0
                shares[name].append(min(inside / lesion_mm3, 1.0) if lesion_mm3 else 0.0)
        for name in sizes:
            result[name][f"{label}_median_share"] = round(statistics.median(shares[name]), 2)
            result[name][f"{label}_fully_missed"] = round(sum(v < 0.05 for v in shares[name]) / per_class, 2)
            result[name][f"{label}_min_share"] = round(min(shares[name]), 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--coverage-cases", type=int, default=12, help="phantom studies per class for coverage"
    )
    parser.add_argument(
        "--coverage-only", action="store_true", help="only the lesion coverage table (no dcm2niix needed)"
    )
    args = parser.parse_args()
    if args.coverage_only:
        coverage = lesion_coverage(args.coverage_cases)
        print(json.dumps(coverage, indent=2))
        path = write_result("ingest_coverage", {"lesion_coverage": coverage})
        print(f"wrote {path}")
        return
    if shutil.which("dcm2niix") is None:
        raise SystemExit("dcm2niix is not installed: apt-get install dcm2niix")
    results = {}
    with tempfile.TemporaryDirectory(prefix="fedsynth-bench-") as tmp:
        phantom = Path(tmp) / "phantom"
        write_phantom(
            PhantomRequest(out=phantom, cases=1, profile="external", seed=1, matrix=512, slice_mm=2.0)
        )
        series = {
            "real_ct_64_slices": real_ct(),
            "phantom_512_2mm": phantom / read_labels(phantom)[0]["folder"],
        }
        for name, folder in series.items():
            results[name] = measure(folder, args.repeats)
            print(f"{name}: {results[name]}")
    coverage = lesion_coverage(args.coverage_cases)
    print(f"lesion coverage: {coverage}")
    payload = {
        "cores": workers.cores(),
        "goal_ratio": GOAL_RATIO,
        "series": results,
        "lesion_coverage": coverage,
    }
    path = write_result("ingest", {**payload, "peak_rss_mb": round(peak_rss_mb(), 1)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
