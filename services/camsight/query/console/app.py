"""The console's aiohttp application: security headers, sessions, CSRF, error pages.

Its own port (``services.query.console``), not the health server's: the health port
is unauthenticated by design (probes, Prometheus) and shared by every service of a
process, the console's is authenticated and the query service's alone
(docs/decisions/0054).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources

from aiohttp import web

from camsight.bus import Bus
from camsight.query.console.api import Api, ConsoleError
from camsight.query.console.live import LiveFeeds
from camsight.query.console.render import page
from camsight.query.console.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    Session,
    Sessions,
    clear_cookie,
    set_cookie,
)
from camsight.query.faces_api import MAX_IMAGE_BYTES

# No inline script or style anywhere: every script and sheet is a file under /static.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make Origin "null" on our own forms
    "X-Frame-Options": "DENY",
}
# Pages reachable without a session.
PUBLIC = ("/login", "/static/")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# The largest request body: an enrollment photo and the rest of its form.
MAX_BODY_BYTES = MAX_IMAGE_BYTES + 64 * 1024
# A larger upload is read to its end (up to this) so the browser gets the page saying why.
DRAIN_LIMIT_BYTES = 256 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Console:
    """What the handlers share (``request.app[CONSOLE]``)."""

    api: Api
    sessions: Sessions
    bus: Bus
    feeds: LiveFeeds
    closing: asyncio.Event = field(default_factory=asyncio.Event)


CONSOLE = web.AppKey("console", Console)
SESSION = web.RequestKey("session", Session)


def session_of(request: web.Request) -> Session:
    return request[SESSION]


def console_of(request: web.Request) -> Console:
    return request.app[CONSOLE]


async def _drain(request: web.Request) -> None:
    read = 0
    while read < DRAIN_LIMIT_BYTES and (chunk := await request.content.readany()):
        read += len(chunk)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    if not response.prepared:  # a stream (SSE, MJPEG) set them before it started
        response.headers.update(SECURITY_HEADERS)
    if isinstance(response, web.HTTPException) and response.status >= 300:
        raise response
    return response


@web.middleware
async def authenticated(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page but login needs a session; every write its CSRF token; errors become pages."""
    console = console_of(request)
    if request.path.startswith(PUBLIC):
        return await handler(request)
    session = console.sessions.of(request)
    issued = None
    if session is None and console.sessions.anonymous:
        session = issued = console.sessions.new_anonymous()
    if session is None:
        if request.method in SAFE_METHODS:
            raise web.HTTPSeeOther("/login")
        return page("error.html", None, status=401, message="not logged in: log in again")
    request[SESSION] = session
    try:
        if request.method not in SAFE_METHODS:
            await _check_csrf(request, session)
        response = await handler(request)
    except ConsoleError as exc:
        if exc.status == 401:
            response = web.HTTPSeeOther("/login")
            clear_cookie(response)
            return response
        response = page("error.html", session, status=exc.status, message=exc.message)
    if issued is not None:
        set_cookie(response, request, issued)
    return response


async def _check_csrf(request: web.Request, session: Session) -> None:
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        await _drain(request)
        raise ConsoleError(
            413, f"the upload is larger than {MAX_IMAGE_BYTES // 2**20} MiB: refused"
        ) from None
    presented = request.headers.get(CSRF_HEADER) or str(form.get(CSRF_FIELD, ""))
    if not session.csrf_ok(presented):
        raise ConsoleError(403, "missing or wrong CSRF token: reload the page and try again")


def static_root() -> str:
    return str(resources.files("camsight.query.console") / "static")


def make_app(console: Console, routes: list[web.AbstractRouteDef]) -> web.Application:
    app = web.Application(middlewares=[security_headers, authenticated], client_max_size=MAX_BODY_BYTES)
    app[CONSOLE] = console
    app.add_routes([*routes, web.static("/static", static_root())])
    return app
