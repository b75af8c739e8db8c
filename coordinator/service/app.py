"""The coordinator's HTTP API (FastAPI). `coordinator serve` runs it under uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from coordinator.config import CoordinatorSettings
from coordinator.service.database import Database
from coordinator.service.routes import audit_log, datasets, health, rounds, sites
from shared import __version__


def create_app(settings: CoordinatorSettings, database: Database | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.database = database or Database.open(settings)
        try:
            yield
        finally:
            app.state.database.close()

    app = FastAPI(
        title="fedsynth coordinator",
        version=__version__,
        description="Sites, rounds, pooled synthetic datasets and models of a fedsynth federation.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    for module in (health, sites, rounds, datasets, audit_log):
        app.include_router(module.router)
    return app
