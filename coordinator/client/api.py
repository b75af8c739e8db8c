"""A small client for the coordinator's HTTP API, for researchers' and operators' commands.

Every failure becomes one ClientError that says what went wrong in words: the server cannot be
reached, the token was refused, its role may not do this, or what the server said was missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from coordinator.errors import CoordinatorError

SERVER_ENV = "FEDSYNTH_SERVER"
TOKEN_ENV = "FEDSYNTH_TOKEN"
DEFAULT_SERVER = "http://127.0.0.1:8000"


class ClientError(CoordinatorError):
    """The coordinator could not be reached, or refused or could not answer a request."""


class Unreachable(ClientError):
    """No answer at all: the server is down, unreachable, or the connection dropped."""


def resolve_server(given: str | None) -> str:
    return (given or os.environ.get(SERVER_ENV) or DEFAULT_SERVER).rstrip("/")


def resolve_token(given: str | None) -> str:
    token = given or os.environ.get(TOKEN_ENV)
    if not token:
        raise ClientError(f"an API token is needed: pass --token or set {TOKEN_ENV}")
    return token


class ApiClient:
    def __init__(self, server: str, token: str, *, timeout: float = 60.0) -> None:
        self.server = server
        self._http = httpx.Client(
            base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def get_json(self, path: str) -> Any:
        with self._request("GET", path) as response:
            response.read()
            return response.json()

    def post_json(self, path: str, body: Any = None) -> Any:
        with self._request("POST", path, json=body) as response:
            response.read()
            return response.json()

    def get_text(self, path: str) -> str:
        with self._request("GET", path) as response:
            response.read()
            return response.text

    @contextmanager
    def stream(self, path: str, headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        """A streamed GET; 206 and 416 are handed back for the caller to handle (resuming)."""
        with self._request("GET", path, headers=headers, accept=(206, 416)) as response:
            yield response

    @contextmanager
    def _request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        accept: tuple[int, ...] = (),
        json: Any = None,
    ) -> Iterator[httpx.Response]:
        try:
            with self._http.stream(method, path, headers=headers, json=json) as response:
                if response.status_code >= 400 and response.status_code not in accept:
                    response.read()
                    raise ClientError(self._explain(response))
                yield response
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the coordinator at {self.server}: {exc}") from None

    def _explain(self, response: httpx.Response) -> str:
        try:
            detail = str(response.json().get("detail", ""))
        except ValueError:
            detail = response.text[:200]
        code = response.status_code
        if code == 401:
            return f"{self.server} refused the token ({detail}); check --token or ${TOKEN_ENV}"
        if code == 403:
            return f"{self.server}: this token may not do that ({detail})"
        if code == 404:
            return f"{self.server}: {detail or 'not found'}"
        return f"{self.server} answered {code}: {detail}"
