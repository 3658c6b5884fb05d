"""Shared plumbing of the servicers: status mapping and deadlines.

Every handler is wrapped by :func:`unary` (or :func:`streaming`), which
turns :class:`ApiError`, an index read past the deadline and an unreachable
NATS into the right gRPC status, so handlers only state what they do (and
raise rather than call ``context.abort``). Any other exception is a bug:
it is logged with its traceback and the client gets INTERNAL with a fixed
message, never grpc's UNKNOWN with the exception's text (which names Python
types and may quote internals).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import nats.errors
import nats.js.errors

from camsight.query.errors import ApiError
from camsight.query.index import DeadlineExceededError

log = logging.getLogger(__name__)

NATS_DOWN: tuple[type[BaseException], ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    TimeoutError,
)

S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline on the monotonic clock, None when the client set none."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def timeout(context: grpc.aio.ServicerContext, default: float) -> float:
    """Seconds to give a NATS request: the call's remaining time, at most ``default``."""
    remaining = context.time_remaining()
    return default if remaining is None else max(0.001, min(default, remaining))


INTERNAL_MESSAGE = "internal error; see the query service log"


def _status(exc: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    """The status and message a handler's exception becomes."""
    if isinstance(exc, ApiError):
        return exc.code, exc.message
    if isinstance(exc, DeadlineExceededError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(exc)
    if isinstance(exc, NATS_DOWN):
        return grpc.StatusCode.UNAVAILABLE, f"NATS unavailable: {type(exc).__name__}"
    log.error("%s failed", method, exc_info=exc)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


def unary(
    fn: Callable[[S, Req, grpc.aio.ServicerContext], Awaitable[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext], Awaitable[Resp]]:
    @functools.wraps(fn)
    async def wrapper(self: S, request: Req, context: grpc.aio.ServicerContext) -> Resp:
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:  # the handler aborted with its own status
            raise
        except Exception as exc:
            await context.abort(*_status(exc, fn.__qualname__))
            raise  # unreachable: abort raises

    return wrapper


def streaming(
    fn: Callable[[S, Req, grpc.aio.ServicerContext], AsyncIterator[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext], AsyncIterator[Resp]]:
    @functools.wraps(fn)
    async def wrapper(self: S, request: Req, context: grpc.aio.ServicerContext) -> AsyncIterator[Resp]:
        try:
            async for item in fn(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await context.abort(*_status(exc, fn.__qualname__))

    return wrapper


def ensure_connected(bus: Any) -> None:
    """Writes need NATS: refuse at once (UNAVAILABLE) while the connection is down."""
    if not bus.connected:
        raise ApiError(grpc.StatusCode.UNAVAILABLE, "NATS unavailable: not connected")
