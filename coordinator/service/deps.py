"""What routes depend on: settings, a database session, and the caller, checked against roles.

Every route declares who may call it with `Allowed(...)` (or `PUBLIC`); a route without one is a
bug, and a test that walks the route table fails on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from coordinator.config import CoordinatorSettings
from coordinator.service.database import Database
from coordinator.service.tokens import Caller, Role, caller_for

_bearer = HTTPBearer(auto_error=False, description="An API token from `coordinator tokens create`.")


def get_settings(request: Request) -> CoordinatorSettings:
    settings: CoordinatorSettings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    database: Database = request.app.state.database
    with database.session() as session:
        yield session


SettingsDep = Annotated[CoordinatorSettings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


def get_caller(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "an API token is required", {"WWW-Authenticate": "Bearer"}
        )
    caller = caller_for(session, credentials.credentials)
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
OperatorDep = Annotated[Caller, Depends(OPERATOR)]
ReaderDep = Annotated[Caller, Depends(READERS)]
