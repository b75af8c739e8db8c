"""Researchers' downloads: `coordinator datasets download` against a real server, resumed, verified."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.client.api import ApiClient, ClientError
from coordinator.client.download import MARKER, download
from shared.diagnosis.dataset import load_dataset
from shared.synthetic_set import verify_synthetic_set
from tests.coordinator.service.conftest import Service, write_pooled_version


def _cli(service: Service, *args: str, token_role: str = "researcher") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FEDSYNTH_TOKEN": service.tokens[token_role], "FEDSYNTH_SERVER": service.url}
    return subprocess.run(
        [sys.executable, "-m", "coordinator", *args], capture_output=True, text=True, env=env, check=False
    )


def test_a_researcher_downloads_a_published_set_resumes_and_repairs_it(
    sqlite_service: Service, tmp_path: Path
) -> None:
    service = sqlite_service
    write_pooled_version(service.settings, 1)
    write_pooled_version(service.settings, 2, per_class=3)
    service.wait_listed("datasets", 2)
    out = tmp_path / "download"

    # Nothing is published yet: the researcher cannot even see it.
    refused = _cli(service, "datasets", "download", "pooled", "--out", str(out))
    assert refused.returncode == 2 and "no dataset pooled is published" in refused.stderr
    assert not out.exists()
    with service.client("operator") as operator:
        for version in (1, 2):
            assert operator.post(f"/datasets/pooled/{version}/publish").status_code == 200

    listed = _cli(service, "datasets", "list")
    assert listed.returncode == 0 and "pooled/1" in listed.stdout and "pooled/2" in listed.stdout
    fetched = _cli(service, "datasets", "download", "pooled", "--out", str(out))  # the newest: v2
    assert fetched.returncode == 0, fetched.stderr
    assert "39 files verified" in fetched.stdout
    assert verify_synthetic_set(out) == 6 * 3 * 2 + 3  # the folder is the set, and nothing else
    assert load_dataset(out).card.version == 2 and not (out / MARKER).exists()

    # What a kill leaves behind: a half-arrived file, a damaged one, a missing one.
    images = sorted((out / "images").iterdir())
    half = images[0].read_bytes()
    images[0].rename(images[0].with_name(images[0].name + ".part"))
    images[0].with_name(images[0].name + ".part").write_bytes(half[: len(half) // 2])
    damaged = bytearray(images[1].read_bytes())
    damaged[100] ^= 0xFF
    images[1].write_bytes(bytes(damaged))
    missing = images[2].read_bytes()
    images[2].unlink()
    with ApiClient(service.url, service.tokens["researcher"]) as client:
        result = download(client, "/datasets/pooled/2", out)
    assert result.resumed == 1 and result.already_there == result.files - 3
    assert result.fetched_bytes == len(half) - len(half) // 2 + len(damaged) + len(missing)
    assert verify_synthetic_set(out) == 39

    # A download never writes into a folder holding anything else, nor over another set.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    busy = _cli(service, "datasets", "download", "pooled/1", "--out", str(other))
    assert busy.returncode == 2 and "is not empty" in busy.stderr
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    again = _cli(service, "datasets", "download", "pooled-v1", "--out", str(out))
    assert again.returncode == 2 and "is not empty" in again.stderr
    assert verify_synthetic_set(out) == 39


def test_the_client_names_what_went_wrong(sqlite_service: Service, tmp_path: Path) -> None:
    service = sqlite_service
    wrong_token = subprocess.run(
        [
            sys.executable,
            "-m",
            "coordinator",
            "datasets",
            "list",
            "--server",
            service.url,
            "--token",
            "fst_nope",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong_token.returncode == 2 and "refused the token" in wrong_token.stderr
    nobody = _cli(service, "datasets", "list", "--server", "http://127.0.0.1:9")
    assert nobody.returncode == 2 and "cannot reach the coordinator at http://127.0.0.1:9" in nobody.stderr
    with (
        ApiClient(service.url, service.tokens["site"]) as client,
        pytest.raises(ClientError, match="may not"),
    ):
        client.get_json("/datasets")
    bad_name = _cli(service, "datasets", "download", "../etc", "--out", str(tmp_path / "x"))
    assert bad_name.returncode == 2 and "is not a dataset" in bad_name.stderr


def test_a_server_whose_sums_point_outside_the_folder_is_refused(tmp_path: Path) -> None:
    from coordinator.client.download import parse_sums

    good = "0" * 64 + "  images/a.nii.gz\n"
    assert parse_sums(good, "x") == [("0" * 64, "images/a.nii.gz")]
    for evil in ("../../.bashrc", "/etc/passwd", "images/../../x"):
        with pytest.raises(ClientError, match="line 1"):
            parse_sums("0" * 64 + "  " + evil + "\n", "x")
