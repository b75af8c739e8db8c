"""A full round over a real SuperLink and real SuperNodes on loopback, with TLS and site keys."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from coordinator.federation.flower_cli import CONNECTION, flwr
from coordinator.federation.rounds import RoundFolder, RoundReport
from coordinator.federation.sites import list_sites, online_node_ids
from coordinator.service.database import Database
from coordinator.service.tokens import create_token
from shared.diagnosis.dataset import load_dataset
from shared.diagnosis.model_files import model_sha256
from shared.federation.messages import read_reply
from shared.schemas import DatasetCard
from shared.synthetic_set import verify_synthetic_set
from site_agent.federation.egress import read_egress, read_egress_message
from site_agent.federation.keys import generate_site_key
from site_agent.privacy.ledger import Ledger
from tests.browser import accessibility_violations, chromium, sign_in
from tests.conftest import TEST_BOX, TEST_SPACING_MM
from tests.coordinator.service.conftest import make_tokens, running_api, wait_listed
from tests.federation.conftest import Federation, Hospital
from tests.leak_checks import nearest_real_pair, site_secrets

EPSILON = 3.0
PER_CLASS = 2


def launch(fed: Federation, round_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "coordinator",
        "rounds",
        "launch",
        "--config",
        str(fed.config),
        "--round-id",
        round_id,
        "--epsilon",
        str(EPSILON),
        "--per-class",
        str(PER_CLASS),
        "--box",
        ",".join(map(str, TEST_BOX)),
        "--spacing-mm",
        str(TEST_SPACING_MM),
        "--generator",
        "dpgan3d",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)


@pytest.fixture(scope="module")
def two_sites(
    tmp_path_factory: pytest.TempPathFactory, hospitals: dict[str, Hospital]
) -> Iterator[tuple[Federation, RoundReport]]:
    fed = Federation(tmp_path_factory.mktemp("federation"), hospitals)
    fed.local.start_superlink()
    try:
        fed.connect_all({"site_a": {}, "site_b": {}})
        result = launch(fed, "r1", "--min-sites", "2")
        assert result.returncode == 0, result.stdout + result.stderr
        yield fed, RoundFolder.of(fed.settings, "r1").read_report()
    finally:
        fed.local.stop()


def test_a_round_pools_both_sites_sets_trains_the_model_and_every_site_scores_it(
    two_sites: tuple[Federation, RoundReport],
) -> None:
    fed, report = two_sites
    assert report.state == "completed" and report.flower_run_id is not None
    assert set(report.sites) == {"site_a", "site_b"}
    for site_id, result in report.sites.items():
        assert result.synthesis == "answered" and result.samples == 6 * PER_CLASS
        assert result.privacy is not None and EPSILON - 0.1 < result.privacy.epsilon <= EPSILON
        assert result.budget is not None and result.budget.cap == 10.0
        assert result.budget.spent == pytest.approx(result.privacy.epsilon, rel=1e-6)
        assert result.evaluation == "answered" and result.metrics is not None
        assert result.metrics.site_id == site_id and result.metrics.model_sha256 == report.model_sha256
        held_out = fed.hospitals[site_id].settings
        ledger = Ledger(held_out.paths.ledger).runs()
        assert [r.round_id for r in ledger.values()] == ["r1"]
        (run,) = ledger.values()
        assert run.state == "complete" and len(run.releases) == 1 and not run.refusals

    pooled = Path(str(report.pooled_dataset))
    assert report.pooled_version == 1 and verify_synthetic_set(pooled) == 2 * 2 * 6 * PER_CLASS + 3
    card = DatasetCard.read(pooled / "card.json")
    assert sorted(c.site_id for c in card.sites) == ["site_a", "site_b"]
    assert card.class_counts == {name: 2 * PER_CLASS for name in card.classes}
    figures = RoundFolder.of(fed.settings, "r1").figures
    for name in ("montage.png", "roc.png", "confusion.png", "site_metrics.png"):
        assert (figures / name).stat().st_size > 1000

    shown = subprocess.run(
        [sys.executable, "-m", "coordinator", "rounds", "show", "r1", "--json", "--config", str(fed.config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0 and json.loads(shown.stdout)["state"] == "completed"


def test_every_byte_a_site_sent_is_synthetic_or_a_metric_and_carries_nothing_real(
    two_sites: tuple[Federation, RoundReport],
) -> None:
    """The egress audit: every message each site sent in the round, as Flower's object bytes."""
    fed, _ = two_sites
    for site_id, hospital in fed.hospitals.items():
        settings = hospital.settings
        folder = settings.federation.egress_log
        sent = sorted(folder.glob("*.objects"))
        kinds = [
            json.loads(line)["message_type"] for line in (folder / "egress.jsonl").read_text().splitlines()
        ]
        assert kinds == ["query.synthesize", "evaluate"]  # exactly one answer per request, nothing else

        everything = b"".join(data for path in sent for _, data in read_egress(path))
        forbidden, real = site_secrets(settings, hospital.dicom)
        assert len(forbidden) > 14 * 5
        assert sorted(s for s in forbidden if s.encode() in everything) == []

        # What the records hold: synthetic volumes with a manifest, then metrics; each decoded back.
        synthetic, metrics = (read_reply(read_egress_message(path).content) for path in sent)
        assert synthetic.manifest is not None and synthetic.volumes is not None and synthetic.metrics is None
        assert metrics.metrics is not None and metrics.volumes is None and metrics.manifest is None
        assert set(json.loads(metrics.metrics.model_dump_json())) <= {
            "schema_id",
            "round_id",
            "site_id",
            "model_sha256",
            "classes",
            "cases",
            "accuracy",
            "balanced_accuracy",
            "macro_auc",
            "per_class",
            "confusion",
            "created_at",
        }
        images = synthetic.volumes.images
        rms = np.sqrt(((images[:, None] - real[None]) ** 2).mean(axis=(2, 3, 4)))
        assert rms.min() > 0.5 * nearest_real_pair(real), site_id  # no volume near any real case


def _training_for(hospital: Hospital, round_id: str) -> bool:
    """Whether the site has reserved its budget for the round: it is training for it."""
    return any(r.round_id == round_id for r in Ledger(hospital.settings.paths.ledger).runs().values())


def test_a_round_through_the_api_survives_a_superlink_restart_and_a_killed_server_app_and_is_downloaded(
    two_sites: tuple[Federation, RoundReport], tmp_path: Path
) -> None:
    fed, first = two_sites
    database = Database.open(fed.settings)
    tokens = make_tokens(database)
    with running_api(fed.settings, fed.config, database) as url:
        operator = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {tokens['operator']}"}, timeout=60.0
        )
        site_a = {"Authorization": f"Bearer {tokens['site']}"}  # a site token for site_a
        assert operator.get("/rounds/r1").json()["model_sha256"] == first.model_sha256
        sites = {s["site_id"]: s for s in operator.get("/sites").json()}
        assert set(sites) >= {"site_a", "site_b"} and sites["site_a"]["budget"]["cap"] == 10.0
        assert httpx.get(f"{url}/sites/site_a", headers=site_a).status_code == 200
        assert httpx.get(f"{url}/sites/site_b", headers=site_a).status_code == 404

        # Registering a site through the API registers its key with the SuperLink.
        newcomer = fed.hospital("site_d")
        key = newcomer.public_key.read_text()
        added = operator.post("/sites", json={"site_id": "site_d", "public_key": key})
        assert added.status_code == 201, added.text
        assert int(added.json()["node_id"]) == list_sites(fed.settings)["site_d"].node_id
        again = operator.post("/sites", json={"site_id": "site_d", "public_key": key})
        assert again.status_code == 409 and "already registered" in again.json()["detail"]

        body = {
            "round_id": "r2",
            "epsilon": EPSILON,
            "per_class": PER_CLASS,
            "sites": ["site_a", "site_b"],
            "box": list(TEST_BOX),
            "spacing_mm": TEST_SPACING_MM,
            "min_sites": 2,
            "generator": "dpgan3d",
        }
        launched = operator.post("/rounds", json=body)
        assert launched.status_code == 201, launched.text
        assert launched.json()["flower_run_id"] is not None

        # Both sites train for r2 when the SuperLink restarts: its ServerApp dies with it. The
        # SuperNodes reconnect by themselves; the registrations and the first run survive; the
        # service's watcher runs the round again under its id.
        deadline = time.monotonic() + 300
        while not all(_training_for(fed.hospitals[s], "r2") for s in ("site_a", "site_b")):
            assert time.monotonic() < deadline, operator.get("/rounds/r2").json()["message"]
            time.sleep(0.5)
        fed.local.stop_superlink()
        fed.local.start_superlink()
        registered = list_sites(fed.settings)
        nodes = {registered[site].node_id for site in ("site_a", "site_b")}
        deadline = time.monotonic() + 90
        while not nodes <= online_node_ids(fed.settings):
            assert time.monotonic() < deadline, "the sites did not reconnect after the restart"
            time.sleep(1)
        runs = flwr(fed.settings, "ls", CONNECTION)["runs"]
        assert str(first.flower_run_id) in {str(r["run-id"]) for r in runs}
        # Once the re-run has pooled the sets, its ServerApp is killed: the round is run again
        # from the pooled set it built (or the model it trained).
        killed = 0
        deadline = time.monotonic() + 600
        while (report := operator.get("/rounds/r2").json())["state"] not in ("completed", "failed"):
            assert time.monotonic() < deadline, report["message"]
            if not killed and report["reruns"] == 1 and report["state"] in ("training", "evaluating"):
                killed = fed.local.kill_server_apps()
            time.sleep(0.5)
        assert report["state"] == "completed", report["message"]
        assert killed == 1 and report["reruns"] == 2
        for site_id in ("site_a", "site_b"):  # one reservation and one release for r2: no spend twice
            runs_of_site = Ledger(fed.hospitals[site_id].settings.paths.ledger).runs().values()
            (r2,) = [r for r in runs_of_site if r.round_id == "r2"]
            assert r2.state == "complete" and len(r2.releases) == 1
        (listed,) = [r for r in operator.get("/rounds").json() if r["round_id"] == "r2"]
        assert listed["launched_by"] == "test-operator" and listed["sites_answered"] == 2
        assert listed["finished_at"] is not None
        for result in report["sites"].values():
            assert result["budget"]["spent"] > EPSILON  # two releases composed

        # The next pooled version builds on the last; it and the model are recorded unpublished.
        assert report["pooled_version"] == 2
        datasets = wait_listed(url, tokens["operator"], "datasets", 2)
        assert {d["version"]: d["round_id"] for d in datasets} == {1: "r1", 2: "r2"}
        models = wait_listed(url, tokens["operator"], "models", 2)  # one per round
        assert report["model_sha256"] in {m["model_sha256"] for m in models}
        assert not any(d["published"] for d in datasets)
        operator.post("/datasets/pooled/2/publish").raise_for_status()
        operator.post(f"/models/{report['model_sha256']}/publish").raise_for_status()

        env = {**os.environ, "FEDSYNTH_SERVER": url, "FEDSYNTH_TOKEN": tokens["researcher"]}
        for args in (
            ("datasets", "download", "pooled", "--out", str(tmp_path / "set")),
            ("models", "download", report["model_sha256"][:10], "--out", str(tmp_path / "model")),
        ):
            done = subprocess.run(
                [sys.executable, "-m", "coordinator", *args],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            assert done.returncode == 0, done.stderr
        pooled = load_dataset(tmp_path / "set")  # verifies every file again
        assert sorted((c.site_id, c.round_id) for c in pooled.card.sites) == [
            ("site_a", "r1"),
            ("site_a", "r2"),
            ("site_b", "r1"),
            ("site_b", "r2"),
        ]
        assert len(pooled) == 4 * 6 * PER_CLASS
        assert model_sha256(tmp_path / "model") == report["model_sha256"]
        actions = {e["action"] for e in operator.get("/audit").json()}
        assert {"site.register", "round.launch", "dataset.publish", "model.publish"} <= actions
        operator.close()
    database.close()


def test_a_site_whose_key_was_never_registered_cannot_join(two_sites: tuple[Federation, RoundReport]) -> None:
    fed, _ = two_sites
    stranger = fed.hospital("site_c")  # trusts the CA, but its public key was never added
    online_before = online_node_ids(fed.settings)
    fed.local.join("site_c", stranger.config, wait=False)
    log = fed.local.log_of("site_c")
    deadline = time.monotonic() + 90
    while "Failed to activate SuperNode" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the SuperLink never refused the unregistered SuperNode"
        time.sleep(0.5)
    assert online_node_ids(fed.settings) == online_before
    assert not stranger.settings.federation.egress_log.exists()  # it was never asked anything


def test_the_dashboard_shows_a_completed_rounds_report_and_the_sites_online_and_registers_a_site(
    two_sites: tuple[Federation, RoundReport], tmp_path: Path
) -> None:
    fed, first = two_sites
    database = Database.open(fed.settings)
    with database.session() as session:  # the API test before it made the suite's usual tokens here
        token = create_token(session, name="dashboard-operator", role="operator")
    with running_api(fed.settings, fed.config, database) as url, chromium() as browser:
        page = browser.new_page()
        sign_in(page, url, token)
        page.goto(f"{url}/ui/rounds/{first.round_id}")
        assert page.locator("#round-state").inner_text() == "completed"
        for site_id in ("site_a", "site_b"):  # each site's outcome, spend and score on its own real cases
            row = page.get_by_role("row", name=re.compile(f"^{site_id}")).inner_text()
            assert "answered" in row and f"{EPSILON:.2f}" in row
            metrics = first.sites[site_id].metrics
            assert metrics is not None
            # As the CLI prints them: a value, its interval and case count, or why there is none.
            assert f"\t{metrics.cases}\t{metrics.macro_auc.text()}\t{metrics.balanced_accuracy.text()}" in row
        figures = page.locator("figure img")
        assert figures.count() == 4  # montage, ROC, confusion, the sites' metrics
        for index in range(4):  # every figure arrived and decoded as an image
            assert figures.nth(index).evaluate("img => img.complete && img.naturalWidth > 100")
        assert accessibility_violations(page) == []

        page.get_by_role("link", name="Sites").click()
        for site_id in ("site_a", "site_b"):
            row = page.get_by_role("row", name=re.compile(f"^{site_id}")).inner_text()
            assert "online" in row and "/ 10.00" in row  # connected now; spent of its cap of 10
        assert accessibility_violations(page) == []
        # A new hospital's public key, registered from the page: the SuperLink knows it at once.
        public_key = generate_site_key(tmp_path / "site_e.key").read_text()
        page.get_by_label("Site id (its site.toml's site_id)").fill("site_e")
        page.get_by_label("Public key (one line: ecdsa-sha2-nistp384 ...)").fill(public_key)
        page.get_by_role("button", name="Register the site").click()
        row = page.get_by_role("row", name=re.compile("^site_e")).inner_text()
        assert "offline" in row and "not reported yet" in row
        assert list_sites(fed.settings)["site_e"].node_id > 0
    database.close()
