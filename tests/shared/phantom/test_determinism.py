from pathlib import Path

import numpy as np
import pydicom

from shared.phantom import PROFILES, PhantomRequest, generate_study, read_labels, write_phantom


def _pixels(out: Path) -> dict[str, bytes]:
    result = {}
    for row in read_labels(out):
        for f in (out / row["folder"]).iterdir():
            ds = pydicom.dcmread(f)
            result[f"{row['folder']}/{int(ds.InstanceNumber)}"] = ds.PixelData
    return result


def test_same_seed_gives_byte_identical_pixel_data(tmp_path: Path) -> None:
    runs = []
    for name in ("one", "two"):
        request = PhantomRequest(
            out=tmp_path / name, cases=3, profile="site_c", seed=42, matrix=64, slice_mm=6.0
        )
        write_phantom(request)
        runs.append(_pixels(tmp_path / name))
    assert runs[0].keys() == runs[1].keys()
    assert all(runs[0][k] == runs[1][k] for k in runs[0])
    assert read_labels(tmp_path / "one") == read_labels(tmp_path / "two")


def test_different_seeds_give_different_patients() -> None:
    a = generate_study(PROFILES["site_a"], "thymoma", seed=1, index=1, matrix=64, slice_mm=6.0)
    b = generate_study(PROFILES["site_a"], "thymoma", seed=2, index=1, matrix=64, slice_mm=6.0)
    assert a.identity.study_uid != b.identity.study_uid
    assert a.identity.patient_id != b.identity.patient_id
    assert a.lesion.center != b.lesion.center
    if a.hu.shape == b.hu.shape:
        assert not np.array_equal(a.hu, b.hu)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_worker_processes_write_exactly_what_one_process_writes(tmp_path: Path) -> None:
    trees = []
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        write_phantom(
            PhantomRequest(
                out=out,
                cases=3,
                profile="site_d",
                seed=9,
                matrix=48,
                slice_mm=8.0,
                defects=True,
                preview=True,
                jobs=jobs,
            )
        )
        trees.append(_tree(out))
    assert trees[0].keys() == trees[1].keys()
    different = [name for name in trees[0] if trees[0][name] != trees[1][name]]
    assert different == []
