"""Bearer-token authentication with two scopes, as a grpc.aio server interceptor.

``authorization: Bearer <token>`` is compared in constant time with every
configured token. Every method the server serves is named in :data:`METHOD_SCOPES`
(the scope it needs) or :data:`PUBLIC_METHODS` (no token: health checks and
reflection, which probes and grpcurl need and which reveal only the public schema).
A method in neither is refused for every caller, an admin token included, and with
authentication off too: a method added later stays closed until someone decides
its scope, instead of being readable with a read token (docs/decisions/0053).
Tokens are never logged: a refusal logs the method and the token's configured name.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from camsight.query.settings import Scope, TokenSettings

log = logging.getLogger(__name__)

# The one table of the query server's methods: full method path -> the scope it needs.
# Written out, not derived from the protos, so that a new RPC is a deliberate line here;
# tests/query/test_query_authz.py fails on any served method missing from it.
METHOD_SCOPES: dict[str, Scope] = {
    "/camsight.v1.EventService/ListEvents": Scope.READ,
    "/camsight.v1.EventService/GetEvent": Scope.READ,
    "/camsight.v1.EventService/CountEvents": Scope.READ,
    "/camsight.v1.EventService/StreamEvents": Scope.READ,
    "/camsight.v1.EventService/GetSnapshot": Scope.READ,
    "/camsight.v1.CameraService/GetCamera": Scope.READ,
    "/camsight.v1.CameraService/ListCameras": Scope.READ,
    "/camsight.v1.CameraService/GetCameraStatus": Scope.READ,
    "/camsight.v1.CameraService/ListCameraStatuses": Scope.READ,
    "/camsight.v1.CameraService/CreateCamera": Scope.ADMIN,
    "/camsight.v1.CameraService/UpdateCamera": Scope.ADMIN,
    "/camsight.v1.CameraService/DeleteCamera": Scope.ADMIN,
    "/camsight.v1.FaceGalleryService/GetIdentity": Scope.READ,
    "/camsight.v1.FaceGalleryService/ListIdentities": Scope.READ,
    "/camsight.v1.FaceGalleryService/EnrollFace": Scope.ADMIN,
    "/camsight.v1.FaceGalleryService/EnrollFaceFromEvent": Scope.ADMIN,
    "/camsight.v1.FaceGalleryService/DeleteIdentity": Scope.ADMIN,
}
# Methods that need no token, by exact name (no prefix match: a method added to these
# services by a newer grpcio is refused until listed).
PUBLIC_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/List",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    }
)
# What a token's scope grants: admin includes read.
GRANTS: dict[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.ADMIN: frozenset({Scope.READ, Scope.ADMIN}),
}


class TokenAuth(grpc.aio.ServerInterceptor):
    """Refuses unlisted methods always, and checks bearer tokens when any are configured.

    With no tokens (authentication off, for a trusted network) every listed method is
    open, but an unlisted one is still refused: the table, not the mode, decides what
    the server serves.
    """

    def __init__(self, tokens: Sequence[TokenSettings]) -> None:
        self._tokens = [(t.token.get_secret_value().encode(), t.scope, t.name) for t in tokens]

    @property
    def enabled(self) -> bool:
        """Whether any token is configured (else every listed method is open)."""
        return bool(self._tokens)

    def match(self, presented: bytes) -> tuple[Scope, str] | None:
        """The (scope, name) of a configured token equal to ``presented``, else None."""
        found = None
        for secret, scope, name in self._tokens:  # no early exit: constant time over the list
            if hmac.compare_digest(secret, presented):
                found = (scope, name)
        return found

    def check(
        self, method: str, metadata: Sequence[tuple[str, Any]] | None
    ) -> tuple[grpc.StatusCode, str] | None:
        """None when allowed, else (status, message).

        The caller is authenticated before the table is consulted, so that an
        unauthenticated caller learns nothing about which methods are listed.
        """
        if method in PUBLIC_METHODS:
            return None
        needed = METHOD_SCOPES.get(method)
        if not self._tokens:
            return None if needed is not None else _unlisted(method)
        header = next((str(v) for k, v in metadata or () if k == "authorization"), "")
        kind, _, presented = header.partition(" ")
        if kind.lower() != "bearer" or not presented.strip():
            return grpc.StatusCode.UNAUTHENTICATED, "missing bearer token (authorization: Bearer <token>)"
        match = self.match(presented.strip().encode())
        if match is None:
            log.warning("refused an unknown token", extra={"method": method})
            return grpc.StatusCode.UNAUTHENTICATED, "unknown token"
        scope, name = match
        if needed is None:
            log.warning("refused a method with no scope", extra={"method": method, "token": name})
            return _unlisted(method)
        if needed not in GRANTS[scope]:
            log.warning(
                "refused a token without the method's scope",
                extra={"method": method, "token": name, "scope": needed.value},
            )
            return grpc.StatusCode.PERMISSION_DENIED, f"{method.rsplit('/', 1)[-1]} needs the {needed} scope"
        return None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        refusal = self.check(handler_call_details.method, handler_call_details.invocation_metadata)
        handler = await continuation(handler_call_details)
        if refusal is None or handler is None:
            return handler
        return _refusing(handler, *refusal)


def _refusing(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that fails with ``code``."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    options = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, **options)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **options)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, **options)
    return grpc.unary_unary_rpc_method_handler(refuse, **options)


def _unlisted(method: str) -> tuple[grpc.StatusCode, str]:
    """The refusal of a method that no one gave a scope (deny by default)."""
    return grpc.StatusCode.PERMISSION_DENIED, f"{method} has no scope in the authorization table: refused"
