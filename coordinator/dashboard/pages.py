"""The dashboard's pages, mounted at /ui by `create_app`.

Operator: sites, rounds (launch form, live round page, report, cancel), publishing, audit log.
Researcher: the catalogue of published sets and models, with download links and the command to
copy. Each page asks the API for what it shows (api.py); a role the API refuses sees the API's
own answer, so the pages cannot show more than the API would.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from coordinator.dashboard.api import Api, PageRefused
from coordinator.dashboard.session import (
    CSRF_FIELD,
    csrf_ok,
    csrf_value,
    end_session,
    keep_csrf,
    session_token,
    start_session,
)
from coordinator.federation.rounds import TERMINAL
from shared.schemas.metrics import Figure

PREFIX = "/ui"
HERE = Path(__file__).parent
GENERATORS = ("lesionstats", "ldm3d", "dpgan3d")
FIGURES = ("montage.png", "roc.png", "confusion.png", "site_metrics.png")
LIVE_POLL_S = 2
# The API's refusals a form shows beside its fields (or above it) instead of on a page of their own:
# unreadable or invalid input (400, 422), the federation's state (409), the SuperLink down (503).
FORM_REFUSALS = (400, 409, 422, 503)


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["when"] = _when
    templates.env.filters["figure"] = _figure
    templates.env.filters["epsilon"] = _epsilon
    templates.env.globals.update(prefix=PREFIX, csrf_field=CSRF_FIELD)
    return templates


def _when(value: str | None) -> str:
    if not value:
        return "never"
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _figure(value: dict[str, Any] | None) -> str:
    """A metric as the CLI prints it: `0.81 [0.70, 0.90] n=24`, or why there is none."""
    return Figure.model_validate(value).text() if value else "-"


def _epsilon(value: float | str | None) -> str:
    if value is None:
        return "-"
    number = float(value)
    return "∞ (not private)" if math.isinf(number) else f"{number:.2f}"


def create_dashboard(api_app: FastAPI) -> FastAPI:
    """The dashboard as an app of its own, to mount at PREFIX; `api_app` is the API it calls."""
    ui = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    ui.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = _templates()

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        context.setdefault("me", getattr(request.state, "me", None))
        context.update(csrf=csrf_value(request), path=request.url.path)
        response = templates.TemplateResponse(request, name, context, status_code=status_code)
        keep_csrf(request, response)
        # No page may be framed (clickjacking) or cached by a shared proxy (it shows a caller's data).
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'"
        )
        return response

    def to_signin(request: Request) -> Response:
        response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
        end_session(response)
        return response

    async def signed_in(request: Request) -> tuple[Api, dict[str, Any]] | None:
        token = session_token(request)
        if token is None:
            return None
        api = Api(api_app, token)
        try:
            me = await api.get("/me")
        except PageRefused:  # revoked since sign-in: the session ends here
            await api.__aexit__()
            return None
        request.state.me = me
        return api, me

    @ui.exception_handler(PageRefused)
    async def _refused(request: Request, exc: PageRefused) -> Response:
        if exc.status_code == 401:
            return to_signin(request)
        return page(
            request, "refused.html", status_code=exc.status_code, code=exc.status_code, detail=exc.detail
        )

    def form_refused(request: Request) -> Response:
        return page(
            request,
            "refused.html",
            status_code=403,
            code=403,
            detail="this form has expired or did not come from this dashboard: reload the page and try again",
        )

    # --- sign-in ------------------------------------------------------------------------------

    @ui.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        found = await signed_in(request)
        if found is None:
            return to_signin(request)
        api, me = found
        await api.__aexit__()
        if me["role"] == "operator":
            return RedirectResponse(f"{PREFIX}/rounds", status_code=303)
        if me["role"] == "researcher":
            return RedirectResponse(f"{PREFIX}/catalogue", status_code=303)
        raise PageRefused(403, "a site's token has no dashboard: it is for the site agent's own calls")

    @ui.get("/signin", include_in_schema=False)
    async def signin_form(request: Request) -> Response:
        return page(request, "signin.html", me=None, error=None)

    @ui.post("/signin", include_in_schema=False)
    async def signin(request: Request, token: str = Form(""), csrf: str = Form("")) -> Response:
        if not csrf_ok(request, csrf):
            return form_refused(request)
        token = token.strip()
        try:
            async with Api(api_app, token) as api:
                await api.get("/me")
        except PageRefused:
            error = "That token is unknown or revoked." if token else "Paste your API token."
            return page(request, "signin.html", status_code=401, me=None, error=error)
        response = RedirectResponse(f"{PREFIX}/", status_code=303)
        start_session(request, response, token)
        return response

    @ui.post("/signout", include_in_schema=False)
    async def signout(request: Request, csrf: str = Form("")) -> Response:
        if not csrf_ok(request, csrf):
            return form_refused(request)
        return to_signin(request)

    # --- operator: sites, rounds, publishing, audit -------------------------------------------

    async def sites_page(
        request: Request, api: Api, *, values: dict[str, str], errors: dict[str, str], status_code: int = 200
    ) -> Response:
        sites = await api.get("/sites")
        rounds = await api.get("/rounds")
        connections: dict[str, Any] | None = None
        unknown = ""
        try:
            connections = await api.get("/connections")
        except PageRefused as exc:
            if exc.status_code not in (409, 503):
                raise
            unknown = str(exc.detail)  # the SuperLink is down or not set up: say so, show the rest
        refusals: dict[str, list[str]] = {}
        for listed in rounds[-20:]:
            report = await api.get(f"/rounds/{listed['round_id']}")
            for site_id, result in report["sites"].items():
                if result["synthesis"] in ("refused", "missing", "rejected"):
                    why = result["reason"] or "no reason given"
                    line = f"{report['round_id']}: {result['synthesis']} ({why})"
                    refusals.setdefault(site_id, []).append(line)
        for site in sites:
            budget = site.get("budget") or None
            site["share"] = (
                min(1.0, float(budget["spent"]) / float(budget["cap"])) if budget and budget["cap"] else None
            )
        return page(
            request,
            "sites.html",
            status_code=status_code,
            sites=sites,
            connections=connections,
            unknown=unknown,
            refusals=refusals,
            values=values,
            errors=errors,
        )

    @ui.get("/sites", include_in_schema=False)
    async def sites_list(request: Request) -> Response:
        if (found := await signed_in(request)) is None:
            return to_signin(request)
        async with found[0] as api:
            return await sites_page(request, api, values={}, errors={})

    @ui.post("/sites", include_in_schema=False)
    async def register_site(
        request: Request, site_id: str = Form(""), public_key: str = Form(""), csrf: str = Form("")
    ) -> Response:
        if (found := await signed_in(request)) is None:
            return to_signin(request)
        if not csrf_ok(request, csrf):
            return form_refused(request)
        async with found[0] as api:
            try:
                await api.post("/sites", {"site_id": site_id.strip(), "public_key": public_key.strip()})
            except PageRefused as exc:
                if exc.status_code not in FORM_REFUSALS:
                    raise
                values = {"site_id": site_id, "public_key": public_key}
                errors = _field_errors(exc.detail)
                return await sites_page(
                    request, api, values=values, errors=errors, status_code=exc.status_code
                )
        return RedirectResponse(f"{PREFIX}/sites", status_code=303)

    async def rounds_page(
        request: Request, api: Api, *, values: dict[str, Any], errors: dict[str, str], status_code: int = 200
    ) -> Response:
        rounds = await api.get("/rounds")
        sites = await api.get("/sites")
        foundations = await api.get("/foundations")
        return page(
            request,
            "rounds.html",
            status_code=status_code,
            rounds=list(reversed(rounds)),
            sites=sites,
            foundations=foundations,
            generators=GENERATORS,
            values=values,
            errors=errors,
        )

    @ui.get("/rounds", include_in_schema=False)
    async def rounds_list(request: Request) -> Response:
        if (found := await signed_in(request)) is None:
            return to_signin(request)
        async with found[0] as api:
            return await rounds_page(request, api, values={}, errors={})

    @ui.post("/rounds", include_in_schema=False)
    async def launch(request: Request) -> Response:
        if (found := await signed_in(request)) is None:
            return to_signin(request)
        form = await request.form()
        if not csrf_ok(request, str(form.get(CSRF_FIELD, ""))):
            return form_refused(request)
        values = {key: str(value) for key, value in form.items() if key != CSRF_FIELD}
        body = _round_order(values, [str(s) for s in form.getlist("sites")])
        async with found[0] as api:
            try:
                report = await api.post("/rounds", body)
            except PageRefused as exc:
                if exc.status_code not in FORM_REFUSALS:
                    raise
                errors = _field_errors(exc.detail)
                values["sites"] = [str(s) for s in form.getlist("sites")]  # type: ignore[assignment]
                return await rounds_page(
                    request, api, values=values, errors=errors, status_code=exc.status_code
                )
        return RedirectResponse(f"{PREFIX}/rounds/{report['round_id']}", status_code=303)

    async def round_context(api: Api, round_id: str) -> dict[str, Any]:
        report = await api.get(f"/rounds/{round_id}")
        figures = []
        if report["state"] in TERMINAL or report["state"] == "evaluating":
            for name in FIGURES:  # ask for each: a failed round may have drawn some, or none
                if await api.exists(f"/rounds/{round_id}/figures/{name}"):
                    figures.append(name)
        return {"report": report, "figures": figures, "terminal": report["state"] in TERMINAL}

    @ui.get("/rounds/{round_id}", include_in_schema=False)
    async def round_page(request: Request, round_id: str) -> Response:
        if (found := await signed_in(request)) is None:
            return to_signin(request)
        async with found[0] as api:
            context = await round_context(api, round_id)
        return page(request, "round.html", poll_s=LIVE_POLL_S, **context)

    @ui.get("/rounds/{round_id}/live", include_in_schema=False)
    async def round_live(request: Request, round_id: str) -> Response:
        """The round's state and sites, as a fragment the round page swaps in while it runs."""
        if (found := await signed_in(request)) is None:
            return Response(status_code=401)
        async with found[0] as api:
            context = await round_context(api, round_id)
        return page(request, "round_live.html", **context)

    @ui.post("/rounds/{round_id}/cancel", include_in_schema=False)
    async def cancel(request: Request, round_id: str, csrf: str = Form("")) -> Response:
        if (found := await signed_in(request)) is None:
            return to_signin(request)
        if not csrf_ok(request, csrf):
            return form_refused(request)
        async with found[0] as api:
            await api.post(f"/rounds/{round_id}/cancel")
        return RedirectResponse(f"{PREFIX}/rounds/{round_id}", status_code=303)

    @ui.get("/publishing", include_in_schema=False)
    async def publishing(request: Request) -> Response:
        if (found := await signed_in(request)) is None:
            return to_signin(request)
        api, me = found
        async with api:
            if me["role"] != "operator":  # a researcher may list what is published, not publish it
                raise PageRefused(403, f"the {me['role']} role may not do this")
            datasets = await api.get("/datasets")
            models = await api.get("/models")
        return page(
            request, "publishing.html", datasets=list(reversed(datasets)), models=list(reversed(models))
        )

    @ui.post("/publishing/{kind}/{item:path}/{action}", include_in_schema=False)
    async def publish(request: Request, kind: str, item: str, action: str, csrf: str = Form("")) -> Response:
        if (found := await signed_in(request)) is None:
            return to_signin(request)
        if not csrf_ok(request, csrf):
            return form_refused(request)
        if kind not in ("datasets", "models") or action not in ("publish", "unpublish"):
            raise PageRefused(404, "no such publishing action")
        async with found[0] as api:
            await api.post(f"/{kind}/{item}/{action}")
        return RedirectResponse(f"{PREFIX}/publishing", status_code=303)

    @ui.get("/audit", include_in_schema=False)
    async def audit_page(request: Request, action: str = "", actor: str = "", target: str = "") -> Response:
        if (found := await signed_in(request)) is None:
            return to_signin(request)
        async with found[0] as api:
            entries = await api.get("/audit", limit=10_000)
        wanted = {"action": action.strip(), "actor": actor.strip(), "target": target.strip()}
        shown = [e for e in entries if all(v.lower() in str(e[k]).lower() for k, v in wanted.items() if v)]
        actions = sorted({e["action"] for e in entries})
        return page(
            request, "audit.html", entries=shown[:500], total=len(shown), wanted=wanted, actions=actions
        )

    # --- researchers (and operators): the catalogue ---------------------------------------------

    @ui.get("/catalogue", include_in_schema=False)
    async def catalogue(request: Request) -> Response:
        if (found := await signed_in(request)) is None:
            return to_signin(request)
        async with found[0] as api:
            # Only what is published, for operators too: the catalogue is what researchers see.
            datasets = [d for d in await api.get("/datasets") if d["published"]]
            models = [m for m in await api.get("/models") if m["published"]]
            cards = {
                (d["dataset_id"], d["version"]): await api.get(
                    f"/datasets/{d['dataset_id']}/{d['version']}/card"
                )
                for d in datasets
            }
        entries = [{**d, "card": cards[(d["dataset_id"], d["version"])]} for d in reversed(datasets)]
        return page(request, "catalogue.html", datasets=entries, models=list(reversed(models)))

    @ui.get("/catalogue/datasets/{dataset_id}/{version}", include_in_schema=False)
    async def dataset_page(request: Request, dataset_id: str, version: int) -> Response:
        if (found := await signed_in(request)) is None:
            return to_signin(request)
        async with found[0] as api:
            card = await api.get(f"/datasets/{dataset_id}/{version}/card")
            sums = await api.get(f"/datasets/{dataset_id}/{version}/SHA256SUMS")
            montage = await api.exists(f"/datasets/{dataset_id}/{version}/montage.png")
        files = [line.split("  ", 1)[1] for line in sums.splitlines() if "  " in line]
        base = f"/datasets/{dataset_id}/{version}"
        command = f"coordinator datasets download {dataset_id}/{version} --out {dataset_id}-v{version}"
        return page(
            request, "dataset.html", card=card, files=files, base=base, montage=montage, command=command
        )

    @ui.get("/catalogue/models/{model_sha256}", include_in_schema=False)
    async def model_page(request: Request, model_sha256: str) -> Response:
        if (found := await signed_in(request)) is None:
            return to_signin(request)
        async with found[0] as api:
            card = await api.get(f"/models/{model_sha256}/card")
            sums = await api.get(f"/models/{model_sha256}/SHA256SUMS")
        files = [line.split("  ", 1)[1] for line in sums.splitlines() if "  " in line]
        command = f"coordinator models download {model_sha256[:12]} --out model-{model_sha256[:12]}"
        return page(
            request,
            "model.html",
            card=card,
            sha256=model_sha256,
            files=files,
            base=f"/models/{model_sha256}",
            command=command,
        )

    return ui


def _round_order(values: dict[str, str], sites: list[str]) -> dict[str, Any]:
    """The launch form as a round order for POST /rounds; empty fields are left to the API's defaults,
    and the API validates the rest (its messages are shown beside the fields)."""
    body: dict[str, Any] = {}
    for key in (
        "round_id",
        "epsilon",
        "per_class",
        "min_sites",
        "generator",
        "spacing_mm",
        "foundation",
        "timeout_s",
    ):
        if values.get(key, "").strip():
            body[key] = values[key].strip()
    if values.get("box", "").strip():
        body["box"] = [part.strip() for part in values["box"].split(",")]
    if sites:
        body["sites"] = sites
    return body


def _field_errors(detail: Any) -> dict[str, str]:
    """The API's refusal as messages by form field (`_form` for the whole form)."""
    if not isinstance(detail, list):
        return {"_form": str(detail)}
    errors: dict[str, str] = {}
    for error in detail:
        loc = [str(part) for part in error.get("loc", []) if part != "body"]
        field = loc[0] if loc else "_form"
        errors[field] = (errors.get(field, "") + " " + str(error.get("msg", ""))).strip()
    return errors
