"""Pull-consumer worker: fetch a batch, handle it, ack, repeat.

The contract every consuming service relies on:

* ``fetch(batch, timeout)`` is the dynamic batcher: under load batches fill
  up, when idle a single message is handled as soon as it arrives.
* A message is acked only after the handler returned for it, and the handler
  returns only after its output is published (JetStream acked it). A crash in
  between means redelivery, never loss.
* A message the handler cannot parse, or on which it raises, is acked,
  counted, logged with its subject and copied to ``deadletter.<consumer>``;
  the worker goes on with the next one.
* A transient failure (NATS unavailable while publishing output) is nak'ed
  with a delay, so the message comes back once the bus is healthy.
* A handler that must keep a message past its return (behavior holds
  results in a reorder buffer) answers :data:`HELD` for it and settles it
  later with :func:`ack_held`, once its effect is durable; until then a crash
  means redelivery after ``ack_wait``.
* :meth:`PullWorker.stop` drains: the batch in hand is finished and acked,
  then the loop ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Histogram

from camsight.bus import subjects
from camsight.bus.connection import Bus
from camsight.retry import Backoff, retry_async

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Msg]], Awaitable[Sequence[BaseException | None]]]
"""Handles a batch; returns one outcome per message (None = done, ack it)."""

HANDLED = Counter("camsight_bus_messages_handled", "Messages handled and acked", ["consumer"])
DEAD_LETTERED = Counter(
    "camsight_bus_messages_dead_lettered", "Messages that could not be handled", ["consumer", "reason"]
)
RETRIED = Counter("camsight_bus_messages_retried", "Messages nak'ed for redelivery", ["consumer"])
BATCH_SIZE = Histogram(
    "camsight_bus_batch_size", "Messages per fetched batch", ["consumer"], buckets=(1, 2, 4, 8, 16, 32, 64)
)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.ServiceUnavailableError,
    TimeoutError,
)


class MalformedMessageError(ValueError):
    """The message is not what the subject promises (cannot be parsed or validated)."""


class TransientError(RuntimeError):
    """Handling failed for a reason that may go away: redeliver the message later."""


class Held(Exception):
    """Outcome: the handler keeps the message and acks it itself (:func:`ack_held`)."""


HELD = Held()


async def ack_held(msg: Msg, consumer: str) -> None:
    """Ack a message a handler held; if the ack cannot be sent it is redelivered (a duplicate)."""
    try:
        await msg.ack()
        HANDLED.labels(consumer).inc()
    except TRANSIENT_ERRORS as exc:
        log.warning("could not ack held message on %s: %s", msg.subject, exc)


def each(handle: Callable[[Msg], Awaitable[Held | None]]) -> BatchHandler:
    """Adapt a per-message coroutine into a batch handler; order is kept.

    The coroutine returns None (ack) or :data:`HELD`. Protobuf ``DecodeError``
    is reported as a malformed message.
    """

    async def batch(msgs: Sequence[Msg]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        for msg in msgs:
            try:
                outcomes.append(await handle(msg))
            except DecodeError as exc:
                outcomes.append(MalformedMessageError(f"cannot parse protobuf: {exc}"))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    return batch


@dataclass
class WorkerConfig:
    """Where to consume from and how.

    ``durable`` is shared by every replica of a service: JetStream spreads
    the messages over them. ``ack_wait`` bounds how long a dead replica
    holds its messages before they are redelivered to another one.
    """

    stream: str
    durable: str
    filter_subjects: list[str]
    batch: int = 16
    fetch_timeout: float = 1.0
    ack_wait: float = 30.0
    max_deliver: int = 5
    max_ack_pending: int = 1024
    retry_delay: float = 1.0
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    description: str = ""
    inactive_threshold: float | None = None
    sample_freq: str | None = None
    """Ack sampling, e.g. ``"100%"``: the server then publishes a consumer-ack
    advisory for every ack, which the decoder uses to pace lossless cameras."""
    extra: dict[str, object] = field(default_factory=dict)

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            description=self.description or None,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
            deliver_policy=self.deliver_policy,
            filter_subjects=self.filter_subjects if len(self.filter_subjects) > 1 else None,
            filter_subject=self.filter_subjects[0] if len(self.filter_subjects) == 1 else None,
            inactive_threshold=self.inactive_threshold,
            sample_freq=self.sample_freq,
        )


class PullWorker:
    """Consumes ``config.stream`` through a durable pull consumer."""

    def __init__(self, bus: Bus, config: WorkerConfig, handler: BatchHandler) -> None:
        self.bus = bus
        self.config = config
        self.handler = handler
        self._stopping = asyncio.Event()
        self._sub: nats.js.JetStreamContext.PullSubscription | None = None

    @property
    def name(self) -> str:
        return self.config.durable

    async def subscribe(self) -> None:
        """Create (or bind to) the durable consumer. Idempotent."""
        if self._sub is None:
            self._sub = await self.bus.js.pull_subscribe(
                self.config.filter_subjects[0] if len(self.config.filter_subjects) == 1 else "",
                durable=self.config.durable,
                stream=self.config.stream,
                config=self.config.consumer_config(),
            )

    async def run(self) -> None:
        """Fetch and handle batches until :meth:`stop` is called."""
        await self.subscribe()
        assert self._sub is not None
        # While the bus is down, fetches fail at once: back off (the shared policy).
        backoff = Backoff(self.config.retry_delay, 4 * self.config.retry_delay)
        while not self._stopping.is_set():
            try:
                msgs = await retry_async(
                    self._fetch,
                    on=TRANSIENT_ERRORS,
                    backoff=backoff,
                    stopping=self._stopping,
                    on_retry=_fetch_failed,
                )
            except TRANSIENT_ERRORS:
                break  # stopped while the bus was unreachable
            if msgs:
                BATCH_SIZE.labels(self.name).observe(len(msgs))
                await self.process(msgs)
        with contextlib.suppress(*TRANSIENT_ERRORS, nats.errors.BadSubscriptionError):
            await self._sub.unsubscribe()

    async def _fetch(self) -> list[Msg]:
        """A batch, or none when nothing came within the fetch timeout."""
        assert self._sub is not None
        try:
            return list(await self._sub.fetch(self.config.batch, timeout=self.config.fetch_timeout))
        except (nats.errors.TimeoutError, TimeoutError):
            return []

    async def process(self, msgs: Sequence[Msg]) -> None:
        """Hand a batch to the handler and settle every message."""
        try:
            outcomes = list(await self.handler(msgs))
            if len(outcomes) != len(msgs):
                raise RuntimeError(f"handler returned {len(outcomes)} outcomes for {len(msgs)} messages")
        except Exception as exc:  # the whole batch failed
            outcomes = [exc] * len(msgs)
        for msg, outcome in zip(msgs, outcomes, strict=True):
            await self._settle(msg, outcome)

    async def _settle(self, msg: Msg, outcome: BaseException | None) -> None:
        try:
            if isinstance(outcome, Held):
                return  # the handler acks it later
            if outcome is None:
                await msg.ack()
                HANDLED.labels(self.name).inc()
            elif isinstance(outcome, (*TRANSIENT_ERRORS, TransientError)) and not self._last_delivery(msg):
                await msg.nak(delay=self.config.retry_delay)
                RETRIED.labels(self.name).inc()
            else:
                await self.dead_letter(msg, outcome)
                await msg.ack()
        except TRANSIENT_ERRORS as exc:
            # The ack itself could not be sent: the message will be redelivered.
            log.warning("could not settle message on %s: %s", msg.subject, exc)

    def _last_delivery(self, msg: Msg) -> bool:
        try:
            return msg.metadata.num_delivered >= self.config.max_deliver
        except (nats.errors.NotJSMessageError, AttributeError):
            return True

    async def dead_letter(self, msg: Msg, error: BaseException) -> None:
        """Count, log and copy a message that could not be handled."""
        reason = type(error).__name__
        DEAD_LETTERED.labels(self.name, reason).inc()
        text = str(error).replace("\r", " ").replace("\n", " ")[:500] or reason
        log.error(
            "dead-lettered message on %s: %s: %s",
            msg.subject,
            reason,
            text,
            extra={"subject": msg.subject, "consumer": self.name, "reason": reason},
        )
        headers = {
            subjects.ORIGINAL_SUBJECT_HEADER: msg.subject,
            subjects.ERROR_HEADER: f"{reason}: {text}",
            subjects.CONSUMER_HEADER: self.name,
        }
        try:
            await self.bus.js.publish(subjects.deadletter(self.name), msg.data, headers=headers, timeout=5)
        except TRANSIENT_ERRORS as exc:
            log.warning("could not copy message to the dead-letter stream: %s", exc)

    async def stop(self) -> None:
        """Ask the loop to end after the batch in hand (drain)."""
        self._stopping.set()


def _fetch_failed(exc: BaseException, delay: float) -> None:
    log.debug("fetch failed (%s); retrying in %.1fs", exc, delay)


async def apply_consumer(bus: Bus, config: WorkerConfig) -> None:
    """Create the durable consumer of ``config``, or update it in place.

    :meth:`PullWorker.subscribe` binds to an existing durable as it is; call
    this first when a durable's editable settings (its filter subjects, e.g.
    the cameras a behavior replica owns) change between runs. Delivery
    position and pending acks are kept.
    """
    await bus.js.add_consumer(config.stream, config.consumer_config())
