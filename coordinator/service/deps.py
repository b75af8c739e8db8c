"""What routes depend on: settings, a database session, and the caller, checked against roles.

Every route declares who may call it with `Allowed(...)` (or `PUBLIC`); a route without one is a
bug, and a test that walks the route table fails on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.dependencies.utils import get_flat_dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.orm import Session

from coordinator.config import CoordinatorSettings
from coordinator.service.database import Database
from coordinator.service.object_store import ObjectStore
from coordinator.service.serving import ArchivePlans
from coordinator.service.tokens import Caller, Role, caller_for
from coordinator.service.watcher import Watcher

_bearer = HTTPBearer(auto_error=False, description="An API token from `coordinator tokens create`.")


def get_settings(request: Request) -> CoordinatorSettings:
    settings: CoordinatorSettings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    database: Database = request.app.state.database
    with database.session() as session:
        yield session


def get_store(request: Request) -> ObjectStore:
    store: ObjectStore = request.app.state.store
    return store


def get_archive_plans(request: Request) -> ArchivePlans:
    plans: ArchivePlans = request.app.state.archive_plans
    return plans


def get_watcher(request: Request) -> Watcher:
    watcher: Watcher = request.app.state.watcher
    return watcher


def get_config_file(request: Request) -> Path:
    path: Path = request.app.state.config_file
    return path


SettingsDep = Annotated[CoordinatorSettings, Depends(get_settings)]
# "function" scope: the session commits when the route returns, before the response is sent. With
# FastAPI's default ("request") it committed after, so a client could act on an answer (publish,
# unpublish, register) before its change was in the database; downloads stream outside it.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
ArchivePlansDep = Annotated[ArchivePlans, Depends(get_archive_plans)]
WatcherDep = Annotated[Watcher, Depends(get_watcher)]
ConfigFileDep = Annotated[Path, Depends(get_config_file)]


# The dashboard's sign-in keeps the caller's own API token in this cookie (HttpOnly, SameSite).
SESSION_COOKIE = "fedsynth_session"
# Methods for which the cookie stands in for the Authorization header: reads only. A request a
# hostile page makes the browser send carries the cookie too (SameSite aside), so nothing that
# changes state is ever done on the cookie alone; the dashboard's forms post to its own routes,
# which check a CSRF token and then call the API with the token as a Bearer header.
COOKIE_METHODS = frozenset({"GET", "HEAD"})


def get_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    token = credentials.credentials if credentials is not None else None
    if token is None and request.method in COOKIE_METHODS:
        token = request.cookies.get(SESSION_COOKIE)  # downloads and images linked from the dashboard
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "an API token is required", {"WWW-Authenticate": "Bearer"}
        )
    # A transaction of its own (it records when the token was last used), committed before the
    # route's own session writes anything: SQLite has one writer at a time.
    database: Database = request.app.state.database
    with database.session() as session:
        caller = caller_for(session, token)
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown or revoked token", {"WWW-Authenticate": "Bearer"}
        )
    return caller


class Allowed:
    """Dependency: the caller, if their role is one of `roles`; 403 otherwise."""

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(roles)

    def __call__(self, caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
        if caller.role not in self.roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {caller.role} role may not do this")
        return caller


class Public:
    """Marker dependency for the few routes anyone may call (health)."""

    roles = frozenset({"anyone"})

    def __call__(self) -> None:
        return None


PUBLIC = Public()
OPERATOR = Allowed("operator")
READERS = Allowed("operator", "researcher")
OPERATOR_OR_SITE = Allowed("operator", "site")
ANY_ROLE = Allowed("operator", "researcher", "site")
OperatorDep = Annotated[Caller, Depends(OPERATOR)]
ReaderDep = Annotated[Caller, Depends(READERS)]
OperatorOrSiteDep = Annotated[Caller, Depends(OPERATOR_OR_SITE)]
AnyRoleDep = Annotated[Caller, Depends(ANY_ROLE)]


class ErrorDetail(BaseModel):
    detail: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a router's routes can give, for the OpenAPI contract."""
    meaning = {
        400: "The body is not JSON that can be read",
        401: "No token, or an unknown or revoked one",
        403: "The token's role may not do this",
        404: "No such item (or not published, to a researcher)",
        409: "The federation's state does not allow it; the detail says why",
        503: "The SuperLink did not answer",
    }
    # Content spelled out, not `model=`: FastAPI would give errors the route's own media type
    # (text/plain for SHA256SUMS, a tar for archives), and every error here is JSON.
    content = {"application/json": {"schema": ErrorDetail.model_json_schema()}}
    return {code: {"description": meaning[code], "content": content} for code in codes}


def refuse_unknown_query(request: Request) -> None:
    """A query parameter no route declares is an error (422), not silently ignored: a typo such
    as `?limt=5` should say so rather than answer as if it were not there."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = {param.alias for param in get_flat_dependant(route.dependant).query_params}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": "unknown query parameter",
                    "input": None,
                }
                for name in unknown
            ]
        )
