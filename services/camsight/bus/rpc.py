"""Request/reply endpoints over core NATS (not JetStream), e.g. face enrollment.

:func:`serve_requests` subscribes a handler to a subject in a queue group,
so the replicas of a service share the endpoint and each request is
answered by exactly one of them. :func:`request` is the caller's side.
Payloads are bytes (serialised protobuf); the handler owns the reply format,
errors included: a handler that raises is logged and answered with
``error_reply(exc)`` when given, else not answered (the caller times out).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from camsight.bus.connection import Bus

log = logging.getLogger(__name__)

RequestHandler = Callable[[bytes], Awaitable[bytes]]


class NoResponderError(RuntimeError):
    """Nobody serves the subject (the service is not running)."""


async def serve_requests(
    bus: Bus,
    subject: str,
    queue: str,
    handler: RequestHandler,
    error_reply: Callable[[Exception], bytes] | None = None,
) -> Subscription:
    """Answer requests on ``subject`` with ``handler`` in queue group ``queue``.

    Requests of one subscription are handled one at a time (in arrival
    order), which bounds the work a burst of requests can start. Stop with
    ``await subscription.unsubscribe()`` (or :meth:`Bus.close`, which drains).
    """

    async def on_request(msg: Msg) -> None:
        try:
            reply = await handler(msg.data)
        except Exception as exc:
            log.exception("request on %s failed", subject)
            if error_reply is None:
                return
            reply = error_reply(exc)
        if msg.reply:
            try:
                await msg.respond(reply)
            except nats.errors.Error as exc:
                log.warning("could not answer a request on %s: %s", subject, exc)

    return await bus.nc.subscribe(subject, queue=queue, cb=on_request)


async def request(bus: Bus, subject: str, payload: bytes, timeout: float = 10.0) -> bytes:
    """Send one request and return the reply's payload.

    Raises :class:`NoResponderError` when no service listens on ``subject``
    and :class:`TimeoutError` when none answered within ``timeout`` seconds.
    """
    try:
        reply = await bus.nc.request(subject, payload, timeout=timeout)
    except nats.errors.NoRespondersError:
        raise NoResponderError(f"no service answers on {subject}") from None
    except nats.errors.TimeoutError:
        raise TimeoutError(f"no answer on {subject} within {timeout:g}s") from None
    return reply.data
