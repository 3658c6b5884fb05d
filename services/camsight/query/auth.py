"""Bearer-token authentication with two scopes, as a grpc.aio server interceptor.

``authorization: Bearer <token>`` is compared in constant time with every
configured token. ``read`` allows every read; ``admin`` also allows camera and
face-gallery writes. Health checks and reflection stay open (probes and
grpcurl need them; they reveal nothing but the public schema). Tokens are
never logged: a refusal logs the method and the token's configured name.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from camsight.query.settings import Scope, TokenSettings

log = logging.getLogger(__name__)

ADMIN_METHODS = frozenset(
    {
        "/camsight.v1.CameraService/CreateCamera",
        "/camsight.v1.CameraService/UpdateCamera",
        "/camsight.v1.CameraService/DeleteCamera",
        "/camsight.v1.FaceGalleryService/EnrollFace",
        "/camsight.v1.FaceGalleryService/EnrollFaceFromEvent",
        "/camsight.v1.FaceGalleryService/DeleteIdentity",
    }
)
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class TokenAuth(grpc.aio.ServerInterceptor):
    def __init__(self, tokens: Sequence[TokenSettings]) -> None:
        self._tokens = [(t.token.get_secret_value().encode(), t.scope, t.name) for t in tokens]

    def _match(self, presented: bytes) -> tuple[Scope, str] | None:
        found = None
        for secret, scope, name in self._tokens:  # no early exit: constant time over the list
            if hmac.compare_digest(secret, presented):
                found = (scope, name)
        return found

    def check(
        self, method: str, metadata: Sequence[tuple[str, Any]] | None
    ) -> tuple[grpc.StatusCode, str] | None:
        """None when allowed, else (status, message)."""
        if method.startswith(OPEN_PREFIXES):
            return None
        header = next((str(v) for k, v in metadata or () if k == "authorization"), "")
        kind, _, presented = header.partition(" ")
        if kind.lower() != "bearer" or not presented.strip():
            return grpc.StatusCode.UNAUTHENTICATED, "missing bearer token (authorization: Bearer <token>)"
        match = self._match(presented.strip().encode())
        if match is None:
            log.warning("refused an unknown token", extra={"method": method})
            return grpc.StatusCode.UNAUTHENTICATED, "unknown token"
        scope, name = match
        if method in ADMIN_METHODS and scope is not Scope.ADMIN:
            log.warning("refused a read token on an admin method", extra={"method": method, "token": name})
            return grpc.StatusCode.PERMISSION_DENIED, f"{method.rsplit('/', 1)[-1]} needs the admin scope"
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
