"""Who is using the console: the session cookie, its scope and its CSRF token.

The cookie holds the bearer token itself (HttpOnly, SameSite=Strict, Secure over
HTTPS; never a URL), so any replica behind a load balancer accepts it and a
restart logs no one out. Its scope comes from the same token table as gRPC
(:class:`camsight.query.auth.TokenAuth`), and every call the console makes carries
the token to the gRPC server, whose interceptor decides: a forged admin form gets
PERMISSION_DENIED there whatever the page showed. Without configured tokens the
cookie holds a random value and the session is anonymous with every scope, as
gRPC is then.

The CSRF token is an HMAC of the cookie's value: a page can hold it, another site
can neither read the cookie nor compute it (docs/decisions/0055).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web

from camsight.query.auth import GRANTS, TokenAuth
from camsight.query.settings import Scope

COOKIE = "camsight_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
ANONYMOUS_PREFIX = "anonymous-"


@dataclass(frozen=True)
class Session:
    """A logged-in browser: what it may do and what its calls send."""

    secret: str
    scope: Scope
    name: str
    anonymous: bool
    read_only: bool = False

    @property
    def admin(self) -> bool:
        return Scope.ADMIN in GRANTS[self.scope]

    @property
    def csrf(self) -> str:
        return hmac.new(self.secret.encode(), b"camsight-console-csrf", hashlib.sha256).hexdigest()

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The gRPC call metadata: the bearer token (none when anonymous)."""
        return () if self.anonymous else (("authorization", f"Bearer {self.secret}"),)

    def csrf_ok(self, presented: str) -> bool:
        return hmac.compare_digest(self.csrf.encode(), presented.encode())


class Sessions:
    """Turns cookies into sessions, with the gRPC server's token table.

    ``read_only`` caps every session at the read scope (a finished run's folder): no page
    offers a write and :func:`views.write` refuses one before any RPC.
    """

    def __init__(self, auth: TokenAuth, read_only: bool = False) -> None:
        self.auth = auth
        self.read_only = read_only

    @property
    def anonymous(self) -> bool:
        return not self.auth.enabled

    def from_secret(self, secret: str) -> Session | None:
        """The session a cookie value stands for; None when it is no (longer a) valid token."""
        if self.anonymous:
            ok = secret.startswith(ANONYMOUS_PREFIX) and len(secret) > len(ANONYMOUS_PREFIX)
            return self._session(secret, Scope.ADMIN, "anonymous") if ok else None
        match = self.auth.match(secret.strip().encode())
        return None if match is None else self._session(secret.strip(), *match)

    def _session(self, secret: str, scope: Scope, name: str) -> Session:
        capped = Scope.READ if self.read_only else scope
        return Session(secret, capped, name, self.anonymous, self.read_only)

    def of(self, request: web.Request) -> Session | None:
        return self.from_secret(request.cookies.get(COOKIE, ""))

    def new_anonymous(self) -> Session:
        return self._session(ANONYMOUS_PREFIX + secrets.token_urlsafe(24), Scope.ADMIN, "anonymous")


def set_cookie(response: web.StreamResponse, request: web.Request, session: Session) -> None:
    response.set_cookie(
        COOKIE, session.secret, httponly=True, samesite="Strict", secure=request.secure, path="/"
    )


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")
