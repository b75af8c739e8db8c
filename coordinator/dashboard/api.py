"""The API as the dashboard calls it: in-process (no socket), as the signed-in caller.

Each call goes through the whole API (its middleware, token check, role check and validation),
with the caller's token as a Bearer header, exactly as `coordinator datasets download` or curl
would; the dashboard never reads the database or the object store itself.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from coordinator.errors import CoordinatorError


class PageRefused(CoordinatorError):
    """The API refused a call a page made for its caller; the page shows why, with the same code."""

    def __init__(self, status_code: int, detail: Any) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


class Api:
    def __init__(self, app: FastAPI, token: str) -> None:
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://coordinator",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's JSON (or text); PageRefused for any answer but 2xx."""
        answer = await self._client.request(method, path, **kwargs)
        if answer.status_code >= 300:
            try:
                detail = answer.json().get("detail", answer.text)
            except ValueError:
                detail = answer.text
            raise PageRefused(answer.status_code, detail)
        if answer.headers.get("content-type", "").startswith("application/json"):
            return answer.json()
        return answer.text

    async def exists(self, path: str) -> bool:
        """Whether a file (a figure, a montage) is there for this caller: 2xx yes, 404 no."""
        answer = await self._client.get(path)
        if answer.status_code == 404:
            return False
        if answer.status_code >= 300:
            raise PageRefused(answer.status_code, answer.text)
        return True

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params or None)

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.call("POST", path, json=body)
