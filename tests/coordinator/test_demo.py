"""`coordinator demo`, run as a real process: a SuperLink, site agents and a round, on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.schemas import DatasetCard
from shared.synthetic_set import verify_synthetic_set
from site_agent.config import load_site_settings
from tests.conftest import TEST_BOX, TEST_SPACING_MM, TinyFoundation


# The demo's own code path with fewer DP epochs per site, set the way an operator would, by
# variable (the noise is calibrated to the same epsilon for the steps that run), so the suite
# spends less time training; `scripts/demo` uses 30.
def fewer_epochs() -> dict[str, str]:
    return {**os.environ, "FEDSYNTH_GENERATOR__EPOCHS": "3"}


def coordinator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordinator", *args],
        capture_output=True,
        text=True,
        check=False,
        env=fewer_epochs(),
    )


_DASHBOARD = re.compile(
    r"Dashboard: (http://127\.0\.0\.1:\d+)/ui/ .*?operator token (fst_\S+) .*?researcher token (fst_\S+) ",
    re.DOTALL,
)


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that name `text` (the demo's folder), read from /proc."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(f"{cmdline.parent.name} {args}")
    return found


def test_the_demo_runs_a_round_across_its_hospitals_and_leaves_a_report(
    tmp_path: Path, tiny_foundation: TinyFoundation
) -> None:
    out = tmp_path / "demo"
    # At the suite's test size, from a foundation at that size; `scripts/demo` runs the CPU box
    # (48x48x64 at 4 mm) from the foundation it ships.
    size = ["--box", ",".join(map(str, TEST_BOX)), "--spacing-mm", str(TEST_SPACING_MM)]
    size += ["--foundation", str(tiny_foundation.folder)]
    # --serve: once the round is done, the demo keeps the federation up with its dashboard, and says
    # where and with which tokens, until Ctrl-C.
    said_file = tmp_path / "demo.out"
    demo_args = ["--sites", "2", "--cases", "12", *size, "--serve"]
    with said_file.open("w") as said_sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "coordinator", "demo", "--out", str(out), *demo_args],
            env={**fewer_epochs(), "COLUMNS": "400"},
            stdout=said_sink,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        while (found := re.search(_DASHBOARD, said_file.read_text())) is None:
            assert demo.poll() is None, said_file.read_text()
            assert time.monotonic() < deadline, said_file.read_text()
            time.sleep(1)
        url, operator_token, researcher_token = found.groups()
        with httpx.Client(base_url=url, cookies={"fedsynth_session": researcher_token}) as researcher:
            catalogue = researcher.get("/ui/catalogue")
            assert catalogue.status_code == 200 and "pooled v1" in catalogue.text
        with httpx.Client(base_url=url, cookies={"fedsynth_session": operator_token}) as operator:
            page = operator.get("/ui/rounds/demo-round-1")
            assert page.status_code == 200 and 'id="round-state">completed<' in page.text
            for name in ("montage.png", "roc.png", "site_metrics.png"):
                assert f"/rounds/demo-round-1/figures/{name}" in page.text
                figure = operator.get(f"/rounds/demo-round-1/figures/{name}")
                assert figure.headers["content-type"] == "image/png" and len(figure.content) > 1000
        os.kill(demo.pid, signal.SIGINT)
        assert demo.wait(timeout=60) == 0, said_file.read_text()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(demo.args, 0, said_file.read_text(), "")
    report = json.loads((out / "report" / "round.json").read_text())
    assert report["state"] == "completed" and set(report["sites"]) == {"site_a", "site_b"}
    for site in ("site_a", "site_b"):
        home = out / "sites" / site
        settings = load_site_settings(home / "site.toml")
        assert settings.site_id == site
        # Each site spent epsilon 8 on one generator, released one set, and scored the model.
        ledger = [json.loads(line)["event"] for line in settings.paths.ledger.read_text().splitlines()]
        assert ledger == ["reserve", "complete", "release"]
        metrics = json.loads((out / "report" / "metrics" / f"{site}.json").read_text())
        assert metrics["site_id"] == site and metrics["model_sha256"] == report["model_sha256"]
        budget = json.loads((out / "report" / "budgets.json").read_text())[site]
        assert 7.9 < budget["spent_this_round"] <= 8.0 and budget["budget"]["cap"] == 10.0
        assert (settings.federation.egress_log / "egress.jsonl").is_file()
        # No site was told where a foundation is: asked (query.foundation), each said it lacked the
        # round's, was sent it, checked and cached it by sha256, and trained from that copy.
        assert settings.generator.foundation is None
        assert (settings.paths.foundations / tiny_foundation.sha256 / "foundation.json").is_file()
        sent = [json.loads(line) for line in (settings.federation.egress_log / "egress.jsonl").open()]
        assert [m["message_type"] for m in sent] == [
            "query.foundation",
            "query.foundation",
            "query.synthesize",
            "evaluate",
        ]
    pooled = out / "report" / "pooled-v1"
    assert verify_synthetic_set(pooled) == 2 * 2 * 6 * 4 + 3
    card = DatasetCard.read(pooled / "card.json")
    assert sorted(c.site_id for c in card.sites) == ["site_a", "site_b"]
    # Each site's set names the generator and the public foundation it started from.
    assert {(c.generator.backend, c.generator.foundation_sha256) for c in card.sites} == {
        ("lesionstats", tiny_foundation.sha256)
    }
    for name in ("montage.png", "roc.png", "site_metrics.png"):
        assert (out / "report" / name).stat().st_size > 1000
    # The round went through the service: launched by the demo's operator token, and the pooled
    # set the operator published was downloaded, whole and verified, with a researcher token.
    assert report["round_id"] == "demo-round-1"
    researcher = out / "researcher" / "pooled"
    assert verify_synthetic_set(researcher) == verify_synthetic_set(pooled)
    assert (researcher / "SHA256SUMS").read_bytes() == (pooled / "SHA256SUMS").read_bytes()
    assert "downloaded pooled set v1" in result.stdout
    assert "Not run by the demo" in result.stdout  # it says plainly what it did not do
    said = " ".join(result.stdout.split())  # and what it did, whatever the terminal's line breaks
    assert "Gaussian-mechanism release of its lesion statistics" in said
    assert "in public chest CT from the foundation's anatomy bank" in said
    assert _processes_mentioning(str(out)) == []  # nothing it started outlives it


def test_ctrl_c_stops_every_process_the_demo_started(tmp_path: Path, tiny_foundation: TinyFoundation) -> None:
    out = tmp_path / "demo"
    size = ["--box", ",".join(map(str, TEST_BOX)), "--spacing-mm", str(TEST_SPACING_MM)]
    size += ["--foundation", str(tiny_foundation.folder)]
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coordinator",
            "demo",
            "--out",
            str(out),
            "--sites",
            "1",
            "--cases",
            "12",  # as few as the demo takes: the test stops it before its round finishes
            *size,
        ],
        env=fewer_epochs(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (out / "sites" / "site_a" / "logs" / "egress").exists() and not list(
            (out / "coordinator" / "data" / "rounds").glob("*/round.json")
        ):
            assert demo.poll() is None and time.monotonic() < deadline, "the demo never reached its round"
            time.sleep(0.5)
        assert _processes_mentioning(str(out))  # the SuperLink and the site agent are running
        os.kill(demo.pid, signal.SIGINT)
        assert demo.wait(timeout=60) != 0
        assert _processes_mentioning(str(out)) == []
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
        # A failed stop must not leave the demo's servers running for the rest of the suite: they
        # start in sessions of their own, so the demo's group does not hold them.
        for line in _processes_mentioning(str(out)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)


def test_the_demo_refuses_a_foundation_that_does_not_fit_its_box_before_writing_anything(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo"
    result = coordinator("demo", "--out", str(out), "--box", "32,32,48", "--spacing-mm", "6")
    assert result.returncode != 0
    assert "draws 48x48x64 boxes at 4 mm, the demo crops 32x32x48 at 6 mm" in result.stdout + result.stderr
    assert not out.exists()
