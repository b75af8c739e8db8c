"""Limits on what a client may send before any route sees it.

Every route takes small JSON bodies or none, so a body is read whole here, up to MAX_BODY_BYTES,
with at most BODY_IDLE_S between its pieces. A larger body is refused with 413 before it is read
(a 10 MB body used to hold the event loop for seconds while it was parsed), and a client that
stops sending half way through its body is answered 408 and let go rather than held forever.

Before that, uvicorn itself waits for ever for a request's head (its keep-alive timeout starts
only after a first response): a client that connects and sends nothing, or half a head, held one
of the server's connections indefinitely. `HeadDeadlineProtocol` closes such a connection.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

try:  # uvicorn's faster HTTP parser, which it uses whenever it is installed
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _UvicornProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    from uvicorn.protocols.http.h11_impl import H11Protocol as _UvicornProtocol  # type: ignore[assignment]

MAX_BODY_BYTES = 1 << 20
BODY_IDLE_S = 30.0
HEAD_TIMEOUT_S = 30.0
KEEP_ALIVE_S = 15


class RequestLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, idle_s = MAX_BODY_BYTES, BODY_IDLE_S  # read here, so that a test can shorten them
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared[:20]) > limit):
            await _answer(send, 413, f"the request body may hold at most {limit} bytes")
            return
        body = bytearray()
        while True:
            try:
                message = await asyncio.wait_for(receive(), idle_s)
            except TimeoutError:
                await _answer(send, 408, f"the request body stopped arriving for {idle_s:.0f} s")
                return
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await _answer(send, 413, f"the request body may hold at most {limit} bytes")
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body, once, as one message; then whatever the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(send: Send, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class HeadDeadlineProtocol(_UvicornProtocol):
    """uvicorn's HTTP protocol, closing a connection whose request head is not complete within
    HEAD_TIMEOUT_S of connecting or of the previous response."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_late)

    def _head_late(self) -> None:
        waiting_for_head = self.cycle is None or self.cycle.response_complete
        if waiting_for_head and not self.transport.is_closing():
            self.transport.close()


def server_config(app: ASGIApp, host: str, port: int, *, log_level: str) -> uvicorn.Config:
    """How uvicorn runs the service (and the tests' services): no websockets; idle connections
    closed between requests after KEEP_ALIVE_S, and before a request's head and within its body by
    the limits above."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="none",
        log_level=log_level,
        timeout_keep_alive=KEEP_ALIVE_S,
        http=HeadDeadlineProtocol,
    )
