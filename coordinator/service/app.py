"""The coordinator's HTTP API (FastAPI). `coordinator serve` runs it under uvicorn.

At start the database is migrated, the object store opened, and the watcher reconciles every round
that was in flight and records what rounds left, before the first request is served.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from coordinator.config import CoordinatorSettings
from coordinator.dashboard.pages import PREFIX as DASHBOARD_PREFIX
from coordinator.dashboard.pages import create_dashboard
from coordinator.federation.errors import FederationError, SuperLinkUnavailable
from coordinator.service.database import Database
from coordinator.service.deps import refuse_unknown_query
from coordinator.service.object_store import ObjectStore, StorageError
from coordinator.service.public_text import plain_reason, printable
from coordinator.service.request_limits import RequestLimits
from coordinator.service.routes import (
    audit_log,
    connections,
    datasets,
    foundations,
    health,
    me,
    models,
    rounds,
    sites,
)
from coordinator.service.serving import ArchivePlans
from coordinator.service.watcher import Watcher
from shared import __version__

log = logging.getLogger(__name__)

# Routers in the order the OpenAPI document lists them.
ROUTERS = (health, me, sites, connections, rounds, datasets, models, foundations, audit_log)


def create_app(
    settings: CoordinatorSettings,
    config_file: Path,
    *,
    database: Database | None = None,
    store: ObjectStore | None = None,
    watch_interval_s: float = 2.0,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.database = database or Database.open(settings)
        app.state.store = store or ObjectStore.open(settings)
        app.state.watcher = Watcher(
            settings, app.state.database, app.state.store, interval_s=watch_interval_s
        )
        app.state.watcher.start()
        try:
            yield
        finally:
            app.state.watcher.stop()
            app.state.database.close()

    app = FastAPI(
        title="fedsynth coordinator",
        version=__version__,
        description="Sites, rounds, pooled synthetic datasets and models of a fedsynth federation.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_unknown_query)],
    )
    app.state.settings = settings
    app.state.archive_plans = ArchivePlans()
    app.state.config_file = config_file
    for module in ROUTERS:
        app.include_router(module.router)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code != status.HTTP_405_METHOD_NOT_ALLOWED:
            return await http_exception_handler(request, exc)
        # Starlette's Allow names the methods of one route only; FastAPI makes a route per method.
        allowed = sorted(
            method
            for route in app.router.routes
            if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE
            for method in route.methods or ()
        )
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers={"Allow": ", ".join(allowed)}
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes every wrong value back, and a value JSON cannot carry (NaN,
        # Infinity, 1e309, a lone surrogate) then broke the answer itself: a 500 for bad input.
        # Say what is wrong and where; the client knows what it sent.
        errors = [
            {"type": e["type"], "loc": [printable(part) for part in e["loc"]], "msg": printable(e["msg"])}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StorageError)
    async def _store_damaged(_: Request, exc: StorageError) -> JSONResponse:
        # A stored object missing, changed or replaced by a link: the operator's problem to mend
        # (the log says which), not the client's; nothing is served from it meanwhile.
        log.warning("object store: %s", exc)
        return JSONResponse(
            {"detail": f"the object store cannot serve this now: {plain_reason(str(exc))}"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.exception_handler(SuperLinkUnavailable)
    async def _superlink_down(_: Request, exc: SuperLinkUnavailable) -> JSONResponse:
        return JSONResponse(
            {"detail": plain_reason(str(exc))}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE
        )

    @app.exception_handler(FederationError)
    async def _federation_refused(_: Request, exc: FederationError) -> JSONResponse:
        # The request was well formed but the federation's state does not allow it (an unknown
        # site, a round id taken, a round already finished): say why, as Flower or the plan did.
        return JSONResponse({"detail": plain_reason(str(exc))}, status_code=status.HTTP_409_CONFLICT)

    # The dashboard: pages that call this API in-process as whoever signed in (coordinator.dashboard).
    app.mount(DASHBOARD_PREFIX, create_dashboard(app))
    app.add_middleware(RequestLimits)
    return app
