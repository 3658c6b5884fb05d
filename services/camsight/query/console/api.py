"""The console's one way into the data: the query service's own gRPC API, as the user.

Every call carries the session's bearer token to the gRPC server on loopback, so the
console answers exactly what ``camsight events list --token …`` would: the same
scopes, the same deny-by-default table, the same INVALID_ARGUMENT messages. A
failed call becomes a :class:`ConsoleError` with the HTTP status the page gets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from camsight.query.console.session import Session
from camsight.v1 import (
    camera_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
    face_gallery_service_pb2_grpc,
)

CALL_TIMEOUT_S = 30.0
R = TypeVar("R")
# gRPC status -> HTTP status of the page that shows it.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class ConsoleError(Exception):
    """What the page says when a call failed: an HTTP status and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def from_rpc(exc: grpc.aio.AioRpcError) -> ConsoleError:
    code = exc.code()
    return ConsoleError(HTTP_STATUS.get(code, 502), f"{code.name}: {exc.details() or ''}")


class Api:
    """Stubs of the three services over one loopback channel."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.aio.insecure_channel(target)
        self.events = event_service_pb2_grpc.EventServiceStub(self.channel)
        self.cameras = camera_service_pb2_grpc.CameraServiceStub(self.channel)
        self.faces = face_gallery_service_pb2_grpc.FaceGalleryServiceStub(self.channel)

    async def call(self, session: Session, method: Callable[..., Awaitable[R]], request: Any) -> R:
        """One unary call as ``session``; failures raise :class:`ConsoleError`."""
        try:
            return await method(request, metadata=session.metadata, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc(exc) from None

    async def all_pages(
        self, session: Session, method: Callable[..., Awaitable[Any]], request: Any, field: str
    ) -> list[Any]:
        """Every item of a paged List call (cameras, statuses, identities)."""
        items: list[Any] = []
        while True:
            response = await self.call(session, method, request)
            items += list(getattr(response, field))
            if not response.next_page_token:
                return items
            request.page_token = response.next_page_token

    def tail(self, session: Session, filter_text: str, since_ns: int | None) -> Any:
        """The StreamEvents call for ``filter_text`` from ``since_ns`` on (replayed, then live).

        A page passes its newest event's start: what was committed between the page's list
        and this tail is replayed, so nothing falls in the gap (the newest row is sent again
        and replaced in place). The caller iterates the call and cancels it when done.
        """
        request = event_service_pb2.StreamEventsRequest(filter=filter_text)
        if since_ns is not None:
            request.start_time.FromNanoseconds(since_ns)
        return self.events.StreamEvents(request, metadata=session.metadata)

    async def close(self) -> None:
        await self.channel.close()
