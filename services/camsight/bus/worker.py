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
* A durable consumer that vanished under the worker is created again: a
  nats-server restarted without a cluster loses its memory streams (FRAMES)
  and their consumers, and the topology step declares only the streams; the
  service that owns a consumer is the one that knows its settings (decision 0083).
* A :class:`Pipeline` handler is run in stages that overlap across batches
  (decode the next batch while this one is analysed and the previous one
  published); batches stay in fetch order in every stage, and the acks
  still follow the last stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Histogram

from camsight.bus import subjects
from camsight.bus.connection import BUS_ERRORS, Bus
from camsight.retry import Backoff, retry_async

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Msg]], Awaitable[Sequence[BaseException | None]]]
"""Handles a batch; returns one outcome per message (None = done, ack it)."""

Stage = Callable[[Any], Awaitable[Any]]
"""One step of a :class:`Pipeline`: takes the previous step's output (the first, the messages)."""


@dataclass(frozen=True)
class Pipeline:
    """A batch handler in stages that overlap across batches.

    ``stages[0]`` takes the fetched messages, each stage's output is the next
    one's input, and the last returns one outcome per message, as a
    :data:`BatchHandler` does. Each stage works on one batch at a time, in
    fetch order, so while stage k handles batch n, stage k-1 handles batch
    n+1: with decoding, analysing and publishing as stages, the model runs
    while the next batch is decoded and the previous one is published and
    acked, instead of each waiting for the others. At most one batch waits
    between two stages, so at most ``2 * len(stages)`` batches are in
    flight. A stage that raises fails its batch (every message gets the
    exception) and the later stages skip it.
    """

    stages: Sequence[Stage]


@dataclass(frozen=True)
class _Failed:
    error: Exception


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


CONSUMER_NOT_FOUND = 10014
"""JetStream's error code for a consumer that does not exist (10059: the stream does not)."""


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
    opt_start_seq: int | None = None
    """The first stream sequence, with ``DeliverPolicy.BY_START_SEQUENCE``."""
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
            opt_start_seq=self.opt_start_seq,
            filter_subjects=self.filter_subjects if len(self.filter_subjects) > 1 else None,
            filter_subject=self.filter_subjects[0] if len(self.filter_subjects) == 1 else None,
            inactive_threshold=self.inactive_threshold,
            sample_freq=self.sample_freq,
        )


class PullWorker:
    """Consumes ``config.stream`` through a durable pull consumer."""

    def __init__(self, bus: Bus, config: WorkerConfig, handler: BatchHandler | Pipeline) -> None:
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
        """Fetch and handle batches until :meth:`stop` is called.

        Cancelled (a handler that did not finish when its service had to stop), it still
        unsubscribes: messages fetched for it and never taken would otherwise hold up the
        connection's drain at close for its whole timeout (30 s).
        """
        await self.subscribe()
        assert self._sub is not None
        try:
            if isinstance(self.handler, Pipeline):
                await self._run_pipeline(self.handler)
            else:
                while not self._stopping.is_set():
                    if msgs := await self._fetch():
                        await self.process(msgs)
        finally:
            with contextlib.suppress(*TRANSIENT_ERRORS, nats.errors.BadSubscriptionError):
                await self._sub.unsubscribe()

    async def _fetch(self) -> list[Msg]:
        """The next batch; empty when none came within the fetch timeout, or when the worker
        stopped while the bus was unreachable (failed fetches back off by the shared policy)."""
        try:
            msgs = await retry_async(
                self._fetch_once,
                on=TRANSIENT_ERRORS,
                backoff=Backoff(self.config.retry_delay, 4 * self.config.retry_delay),
                stopping=self._stopping,
                on_retry=_fetch_failed,
            )
        except TRANSIENT_ERRORS:
            return []
        if msgs:
            BATCH_SIZE.labels(self.name).observe(len(msgs))
        return msgs

    async def _fetch_once(self) -> list[Msg]:
        """A batch, or none when nothing came within the fetch timeout."""
        assert self._sub is not None
        try:
            return list(await self._sub.fetch(self.config.batch, timeout=self.config.fetch_timeout))
        except (nats.errors.TimeoutError, TimeoutError):
            return []
        except nats.js.errors.ServiceUnavailableError:
            # What a fetch from a consumer that does not exist gets (no responders).
            await self._recreate_if_gone()
            raise

    async def _recreate_if_gone(self) -> None:
        """Create the durable consumer again if its stream exists and it does not (any more)."""
        try:
            await self.bus.js.consumer_info(self.config.stream, self.config.durable)
            return
        except nats.js.errors.NotFoundError as exc:
            if exc.err_code != CONSUMER_NOT_FOUND:
                return  # the stream itself is missing: the runtime waits for the topology
        except TRANSIENT_ERRORS:
            return
        try:
            await apply_consumer(self.bus, self.config)
        except BUS_ERRORS as exc:  # tried again on the next failure
            log.warning(
                "consumer %s of stream %s is gone and could not be created: %s",
                self.name,
                self.config.stream,
                exc,
            )
            return
        log.warning(
            "consumer %s of stream %s was gone (a nats-server restart loses memory streams and "
            "their consumers); created it again",
            self.name,
            self.config.stream,
        )

    async def _run_pipeline(self, pipeline: Pipeline) -> None:
        """Fetch into the first stage until stopped; then every batch in flight is finished."""
        stages = list(pipeline.stages)
        queues: list[asyncio.Queue[tuple[list[Msg], Any] | None]] = [asyncio.Queue(maxsize=1) for _ in stages]

        async def step(k: int) -> None:
            while (item := await queues[k].get()) is not None:
                msgs, value = item
                if not isinstance(value, _Failed):
                    try:
                        value = await stages[k](value)
                    except Exception as exc:  # the whole batch failed
                        value = _Failed(exc)
                if k + 1 < len(stages):
                    await queues[k + 1].put((msgs, value))
                else:
                    await self._settle_batch(msgs, value.error if isinstance(value, _Failed) else value)
            if k + 1 < len(stages):
                await queues[k + 1].put(None)

        async with asyncio.TaskGroup() as group:
            for k in range(len(stages)):
                group.create_task(step(k), name=f"{self.name}-stage-{k}")
            while not self._stopping.is_set():
                if msgs := await self._fetch():
                    await queues[0].put((msgs, msgs))
            await queues[0].put(None)

    async def process(self, msgs: Sequence[Msg]) -> None:
        """Hand a batch to the handler and settle every message."""
        assert not isinstance(self.handler, Pipeline)
        try:
            outcomes: Sequence[BaseException | None] | Exception = await self.handler(msgs)
        except Exception as exc:  # the whole batch failed
            outcomes = exc
        await self._settle_batch(msgs, outcomes)

    async def _settle_batch(
        self, msgs: Sequence[Msg], outcomes: Sequence[BaseException | None] | Exception
    ) -> None:
        """Settle each message by its outcome; an exception (or a miscount) fails them all."""
        if not isinstance(outcomes, Exception) and len(outcomes) != len(msgs):
            outcomes = RuntimeError(f"handler returned {len(outcomes)} outcomes for {len(msgs)} messages")
        if isinstance(outcomes, Exception):
            outcomes = [outcomes] * len(msgs)
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
