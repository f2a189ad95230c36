"""Who may read, and the headers every response carries.

When ``http.token`` is set, every path but ``/healthz`` and the WebSub callbacks (hubs cannot
send our token; their pushes are authenticated by their signatures) needs it, given either way:

- an ``Authorization: Bearer <token>`` header: API clients, scripts, feed readers that can set
  a header;
- the dashboard's cookie, for browsers, which cannot send a header by themselves. Opening any
  dashboard page once as ``/?token=<token>`` sets it and redirects to the same page without the
  token, so the token does not stay in the address bar. The cookie is HttpOnly (no script can
  read it), SameSite=Strict (no other site's page can make the browser send it, so the
  read-only pages need no CSRF token), Secure when the request came over HTTPS (directly, or
  through a proxy that sends ``X-Forwarded-Proto: https``), and holds an HMAC of the token
  rather than the token itself.

Only dashboard pages take ``?token=``: the API and the Atom feed never read the token from a
URL, where it would end up in proxies' logs and in histories. Tokens are compared in constant
time. Without a token everything is open; the settings refuse to listen beyond loopback then.

Every response gets a strict Content-Security-Policy (no script at all, styles from our own
origin only, no framing), ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy:
no-referrer`` (a dashboard link to an article must not tell its site where it was followed
from); pages and API answers are ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

__all__ = ["COOKIE", "CSP", "MACHINE", "Handler", "cookie_value", "middleware", "security_headers"]

MACHINE = ("/api/", "/feeds/")
"""Paths for programs (JSON or XML answers; the token only from the Authorization header or
the cookie); every other path is a dashboard page."""
COOKIE = "monitor_session"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def cookie_value(token: str) -> str:
    """What the dashboard's cookie holds for ``token``: an HMAC of it, so the browser never
    stores the token itself (changing the token invalidates every cookie)."""
    return hmac.new(token.encode(), b"monitor dashboard session", hashlib.sha256).hexdigest()


def middleware(
    token: str | Callable[[], str | None] | None, *, open_paths: tuple[str, ...]
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The aiohttp middleware enforcing ``token`` (None: no authentication) on every path but
    those starting with one of ``open_paths``. Given a function, the token is the one it returns
    at each request: a reload may replace it (the old one, and its cookies, stop working)."""
    current: Callable[[], str | None] = token if callable(token) else lambda: token

    def authorized(request: web.Request, token: str) -> bool:
        header = request.headers.get("Authorization")
        if header is not None and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
            return True
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and hmac.compare_digest(
            cookie.encode(), cookie_value(token).encode()
        )

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        token = current()
        if not token or request.path.startswith(open_paths):
            return await handler(request)
        machine = request.path.startswith(MACHINE)
        given = request.query.get("token")
        if given is not None and not machine:
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise _unauthorized(machine=False)
            # The same page without the token, with the cookie that stands for it. The path is
            # made to start with one slash: "//host/..." would send the browser to that host.
            rest = request.rel_url.without_query_params("token")
            location = (
                "/"
                + rest.raw_path.lstrip("/")
                + (f"?{rest.raw_query_string}" if rest.raw_query_string else "")
            )
            found = web.HTTPSeeOther(location=location)
            found.set_cookie(
                COOKIE,
                cookie_value(token),
                path="/",
                httponly=True,
                samesite="Strict",
                # Behind a reverse proxy that terminates TLS, the proxy says so.
                secure=request.secure or request.headers.get("X-Forwarded-Proto") == "https",
            )
            raise found
        if not authorized(request, token):
            raise _unauthorized(machine=machine)
        return await handler(request)

    return check


def _unauthorized(*, machine: bool) -> web.HTTPUnauthorized:
    headers = {"WWW-Authenticate": 'Bearer realm="monitor"'}
    if machine:
        body = {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"}
        return web.HTTPUnauthorized(
            headers=headers, text=json.dumps(body), content_type="application/json"
        )
    return web.HTTPUnauthorized(
        headers=headers,
        text=(
            "401 Unauthorized: this dashboard needs the token of the daemon's http.token "
            "setting. Open this address once with ?token=<token> added; a cookie then keeps "
            "you signed in.\n"
        ),
    )


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: the headers above, on every response (errors included)."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
