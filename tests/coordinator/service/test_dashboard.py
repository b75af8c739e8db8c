"""The dashboard in a real browser (chromium) against a real coordinator service: sign-in by role,
publishing, the audit log, the researcher's catalogue and downloads, CSRF, sign-out, revocation,
and an accessibility check of every page visited. A round launched, followed live and cancelled from
the dashboard, against a real federation, is in tests/federation/test_failures.py."""

from __future__ import annotations

import re
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.sync_api import Page

from coordinator.service.database import Database
from coordinator.service.models import ApiToken
from coordinator.service.tokens import token_sha256
from shared.synthetic_set import verify_synthetic_set
from site_agent.federation.keys import generate_site_key
from tests.browser import accessibility_violations, chromium, sign_in
from tests.coordinator.service.conftest import Service, write_pooled_version

# Every page of the dashboard, and who may open it: the API's own rule for what the page shows.
OPERATOR_PAGES = ("/ui/rounds", "/ui/sites", "/ui/publishing", "/ui/audit", "/ui/rounds/none-such")
READER_PAGES = ("/ui/catalogue", "/ui/catalogue/datasets/pooled/1")


def _errors(page: Page) -> list[str]:
    return [text.strip() for text in page.locator(".error").all_inner_texts()]


def _accessible(page: Page, checked: list[tuple[str, list[object]]]) -> None:
    checked.append((page.url, accessibility_violations(page)))


def test_an_operator_publishes_from_the_dashboard_and_a_researcher_finds_and_downloads_the_set(
    sqlite_service: Service, tmp_path: Path
) -> None:
    service = sqlite_service  # the pages do not depend on the database; the API's tests cover both
    write_pooled_version(service.settings, 1)
    write_pooled_version(service.settings, 2)
    service.wait_listed("datasets", 2)
    checked: list[tuple[str, list[object]]] = []
    with chromium() as browser:
        operator = browser.new_page(accept_downloads=True)
        # The checker finds what it should: an image without a text alternative, a field without a label.
        operator.set_content('<html lang="en"><title>t</title><main><img src="x.png"><input></main></html>')
        assert {"image-alt", "label"} <= {v["id"] for v in accessibility_violations(operator)}
        operator.goto(f"{service.url}/ui/rounds")
        assert operator.url.endswith("/ui/signin")  # no session: sign in first
        _accessible(operator, checked)
        operator.get_by_label("API token").fill("fst_not-a-token")
        operator.get_by_role("button", name="Sign in").click()
        assert "That token is unknown or revoked." in _errors(operator)

        sign_in(operator, service.url, service.tokens["operator"])
        assert operator.url.endswith("/ui/rounds")
        assert operator.get_by_text("test-operator (operator)").is_visible()
        _accessible(operator, checked)
        # The launch form shows the API's own validation beside each field, and launches nothing.
        operator.get_by_label("ε each site spends").fill("-1")
        operator.get_by_label("Samples per class from each site").fill("two")
        operator.get_by_role("button", name="Launch the round").click()
        assert operator.locator("#epsilon").get_attribute("aria-invalid") == "true"
        errors = _errors(operator)
        assert "Input should be greater than 0" in errors
        assert any("valid integer" in e for e in errors)
        assert operator.locator("#epsilon").input_value() == "-1"  # what was typed is kept
        _accessible(operator, checked)
        assert service.client("operator").get("/rounds").json() == []

        operator.get_by_role("link", name="Sites").click()
        # No SuperLink in this test: the page says who is connected is unknown, and why.
        assert any("Who is connected now is unknown" in e for e in _errors(operator))
        _accessible(operator, checked)
        # Registering a site: a malformed key is named at its field; a good one needs the SuperLink.
        operator.get_by_label("Site id (its site.toml's site_id)").fill("site_x")
        operator.get_by_label("Public key (one line: ecdsa-sha2-nistp384 ...)").fill("ssh-rsa AAAA not ours")
        operator.get_by_role("button", name="Register the site").click()
        assert operator.locator("#public_key").get_attribute("aria-invalid") == "true"
        assert any("should match pattern" in e for e in _errors(operator))
        _accessible(operator, checked)
        public_key = generate_site_key(tmp_path / "site_x.key").read_text()
        operator.get_by_label("Public key (one line: ecdsa-sha2-nistp384 ...)").fill(public_key)
        operator.get_by_role("button", name="Register the site").click()
        assert any("coordinator certs init" in e for e in _errors(operator))  # what to do, in words
        assert service.client("operator").get("/sites").json() == []

        operator.get_by_role("link", name="Publishing").click()
        _accessible(operator, checked)
        operator.get_by_role("button", name="Publish pooled v1").click()
        assert operator.get_by_role("button", name="Unpublish pooled v1").is_visible()
        assert operator.get_by_role("button", name="Publish pooled v2").is_visible()

        operator.get_by_role("link", name="Audit log").click()
        operator.get_by_label("Action").select_option("dataset.publish")
        operator.get_by_role("button", name="Filter").click()
        rows = operator.locator("tbody tr").all_inner_texts()
        assert len(rows) == 1 and "test-operator" in rows[0] and "pooled/v1" in rows[0]
        _accessible(operator, checked)

        # The catalogue is what researchers see: v1, published, not v2.
        operator.get_by_role("link", name="Catalogue").click()
        assert operator.get_by_role("link", name="pooled v1").is_visible()
        assert operator.get_by_role("link", name="pooled v2").count() == 0

        operator.get_by_role("button", name="Sign out").click()
        assert operator.url.endswith("/ui/signin")
        operator.goto(f"{service.url}/ui/publishing")
        assert operator.url.endswith("/ui/signin")  # signed out means signed out

        researcher = browser.new_page(accept_downloads=True)
        sign_in(researcher, service.url, service.tokens["researcher"])
        assert researcher.url.endswith("/ui/catalogue")
        assert researcher.get_by_role("link", name="Rounds").count() == 0  # no operator pages offered
        _accessible(researcher, checked)
        researcher.get_by_role("link", name="pooled v1").click()
        _accessible(researcher, checked)
        command = researcher.locator("#download-command").inner_text()
        assert command == "coordinator datasets download pooled/1 --out pooled-v1"
        with researcher.expect_download() as archive_download:
            researcher.get_by_role("link", name="The whole set as one tar").click()
        archive = tmp_path / "pooled-v1.tar"
        archive_download.value.save_as(archive)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp_path / "unpacked", filter="data")
        assert (
            verify_synthetic_set(tmp_path / "unpacked" / "pooled-v1") == 6 * 2 * 2 + 3
        )  # an image and a mask per item
        researcher.get_by_text("Each file").click()
        with researcher.expect_download() as one_file:
            researcher.get_by_role("link", name="labels.csv").click()
        assert (
            Path(one_file.value.path()).read_bytes()
            == (tmp_path / "unpacked/pooled-v1/labels.csv").read_bytes()
        )

        # The researcher's role, for the pages as for the API: operator pages are refused, and an
        # unpublished set does not exist.
        for path in OPERATOR_PAGES:
            answer = researcher.goto(f"{service.url}{path}")
            assert answer is not None and answer.status == 403, path
            assert researcher.get_by_role("heading", name="Not allowed").is_visible()
        answer = researcher.goto(f"{service.url}/ui/catalogue/datasets/pooled/2")
        assert answer is not None and answer.status == 404
        _accessible(researcher, checked)

        # Revoking the token ends the session at the next page.
        with Database.open(service.settings).session() as session:
            row = (
                session.query(ApiToken)
                .filter_by(token_sha256=token_sha256(service.tokens["researcher"]))
                .one()
            )
            row.revoked_at = datetime.now(UTC)
        researcher.goto(f"{service.url}/ui/catalogue")
        assert researcher.url.endswith("/ui/signin")
    assert len(checked) == 10
    assert [(url, found) for url, found in checked if found] == []


def test_pages_admit_each_role_as_the_api_does_and_forms_need_their_csrf_token(
    sqlite_service: Service,
) -> None:
    service = sqlite_service
    write_pooled_version(service.settings, 1)
    service.wait_listed("datasets", 1)
    service.client("operator").post("/datasets/pooled/1/publish").raise_for_status()
    for path in (*OPERATOR_PAGES, *READER_PAGES):
        with httpx.Client(base_url=service.url) as anonymous:
            answer = anonymous.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/signin", path
        for role in ("operator", "researcher", "site"):
            with httpx.Client(
                base_url=service.url, cookies={"fedsynth_session": service.tokens[role]}
            ) as client:
                status = client.get(path).status_code
            expected = {"operator": 200, "researcher": 403 if path in OPERATOR_PAGES else 200, "site": 403}[
                role
            ]
            if path.endswith("none-such") and role == "operator":
                expected = 404
            assert status == expected, (path, role, status)

    with httpx.Client(
        base_url=service.url, cookies={"fedsynth_session": service.tokens["operator"]}
    ) as client:
        page = client.get("/ui/publishing")
        assert page.headers["x-frame-options"] == "DENY" and "no-store" in page.headers["cache-control"]
        # A form posted from elsewhere, without this browser's CSRF value, changes nothing.
        forged = client.post("/ui/publishing/datasets/pooled/1/unpublish", data={"csrf": "guess"})
        assert forged.status_code == 403 and "did not come from this dashboard" in forged.text
        assert service.client("operator").get("/datasets").json()[0]["published"] is True
        # The cookie opens the API for reads only: a POST on it alone is unauthenticated.
        assert client.post("/datasets/pooled/1/unpublish").status_code == 401
        assert client.get("/datasets/pooled/1/SHA256SUMS").status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        done = client.post("/ui/publishing/datasets/pooled/1/unpublish", data={"csrf": csrf.group(1)})
        assert done.status_code == 303
        assert service.client("operator").get("/datasets").json()[0]["published"] is False

    # Sign-in sets the session cookie HttpOnly and SameSite=Strict (Secure when served over HTTPS).
    with httpx.Client(base_url=service.url) as client:
        form = client.get("/ui/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None and "fedsynth_csrf" in form.headers["set-cookie"]
        signed = client.post("/ui/signin", data={"token": service.tokens["operator"], "csrf": csrf.group(1)})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "fedsynth_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert "secure" not in cookie.replace("samesite", "")  # plain HTTP on loopback here
