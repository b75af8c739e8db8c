"""The dashboard's sign-in and its forms' CSRF protection.

The session is the caller's own API token in an HttpOnly, SameSite=Strict cookie (Secure when the
page came over HTTPS), so page scripts cannot read it and other sites' pages cannot send it. The
API accepts that cookie for reads only (coordinator.service.deps). The session lasts at most
SESSION_MAX_AGE_S; a revoked token ends it at the next page.

CSRF: a random value in a second cookie, repeated as a hidden field of every form (double submit).
Another site can make a browser post a form here but cannot read or set this cookie, so it cannot
know the value the form must carry.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from fastapi.responses import Response

from coordinator.service.deps import SESSION_COOKIE

CSRF_COOKIE = "fedsynth_csrf"
CSRF_FIELD = "csrf"
SESSION_MAX_AGE_S = 8 * 3600  # a working day: sign in again each morning


def _secure(request: Request) -> bool:
    # Behind nginx (deploy/nginx) the scheme comes from X-Forwarded-Proto via uvicorn's proxy headers.
    return request.url.scheme == "https"


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def start_session(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE_S,
        path="/",  # the API's download and figure routes read it too
        httponly=True,
        secure=_secure(request),
        samesite="strict",
    )


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def csrf_value(request: Request) -> str:
    """The value this browser's forms must carry: its cookie's, or a new one (see `keep_csrf`)."""
    value = request.cookies.get(CSRF_COOKIE)
    if value is None or len(value) != 43:
        value = getattr(request.state, "new_csrf", None) or secrets.token_urlsafe(32)
        request.state.new_csrf = value
    return value


def keep_csrf(request: Request, response: Response) -> None:
    """Set the CSRF cookie when this page made a new value for its forms."""
    value = getattr(request.state, "new_csrf", None)
    if value is not None:
        response.set_cookie(
            CSRF_COOKIE, value, path="/ui", httponly=True, secure=_secure(request), samesite="strict"
        )


def csrf_ok(request: Request, presented: str | None) -> bool:
    expected = request.cookies.get(CSRF_COOKIE)
    return bool(expected and presented) and hmac.compare_digest(str(expected), str(presented))
