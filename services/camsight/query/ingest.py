"""EVENTS -> index: a durable pull consumer per replica, acking after commit.

Each fetched batch is parsed and merged into the index in one SQLite
transaction (in a worker thread); the worker acks the batch only after the
transaction committed, so a crash at any point means redelivery, which the
idempotent merge absorbs. A batch that cannot be committed (disk full, locked
file) is nak'ed and retried, never dead-lettered.

Committed changes are then fanned out to live tails (:class:`LiveHub`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from prometheus_client import Counter

from camsight.bus import Bus, MalformedMessageError, PullWorker, WorkerConfig, subjects
from camsight.bus.worker import TransientError
from camsight.query.index import EventIndex
from camsight.query.settings import QuerySettings
from camsight.v1 import event_pb2

log = logging.getLogger(__name__)

INDEXED = Counter("camsight_query_events_indexed", "Event messages that changed the index")
LIVE_DROPPED = Counter("camsight_query_live_overflows", "Live tails closed for falling behind")


@dataclass(eq=False)
class LiveSubscription:
    """One live tail's queue. ``overflowed`` is set when the client fell too far behind."""

    queue: asyncio.Queue[event_pb2.Event] = field(default_factory=lambda: asyncio.Queue(maxsize=10_000))
    overflowed: bool = False


class LiveHub:
    """Fans committed events out to every live tail of this replica."""

    def __init__(self) -> None:
        self._subscriptions: set[LiveSubscription] = set()

    @property
    def subscribers(self) -> int:
        """How many live tails are open (a test waits for its tail before publishing)."""
        return len(self._subscriptions)

    def subscribe(self) -> LiveSubscription:
        sub = LiveSubscription()
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: LiveSubscription) -> None:
        self._subscriptions.discard(sub)

    def publish(self, events: Sequence[event_pb2.Event]) -> None:
        for sub in list(self._subscriptions):
            for event in events:
                try:
                    sub.queue.put_nowait(event)
                except asyncio.QueueFull:
                    sub.overflowed = True
                    LIVE_DROPPED.inc()
                    self.unsubscribe(sub)
                    break


def parse_message(msg: Msg) -> tuple[event_pb2.Event, int]:
    """The event and the time the stream stored it (ns); raises MalformedMessageError."""
    event = event_pb2.Event()
    try:
        event.ParseFromString(msg.data)
    except DecodeError as exc:
        raise MalformedMessageError(f"cannot parse camsight.v1.Event: {exc}") from None
    if not event.id:
        raise MalformedMessageError("event has no id")
    expected = f"events.{subjects.event_type_token(event.type)}.{event.camera_id}"
    if msg.subject != expected:
        # A message of another type can parse as an Event by accident; the
        # subject says what it must be.
        raise MalformedMessageError(f"event of type/camera {expected!r} does not belong on {msg.subject!r}")
    if not math.isfinite(event.confidence):
        raise MalformedMessageError(f"event confidence {event.confidence!r} is not a finite number")
    try:
        seen_ns = int(msg.metadata.timestamp.timestamp() * 1e9)
    except (AttributeError, ValueError):
        seen_ns = event.update_time.ToNanoseconds() or event.start_time.ToNanoseconds()
    return event, seen_ns


class Ingestor:
    """Owns the pull worker that feeds the index."""

    def __init__(
        self, bus: Bus, index: EventIndex, hub: LiveHub, durable: str, settings: QuerySettings
    ) -> None:
        self.index = index
        self.hub = hub
        config = WorkerConfig(
            stream=subjects.EVENTS_STREAM,
            durable=durable,
            filter_subjects=[subjects.EVENTS_ALL],
            batch=settings.ingest_batch,
            fetch_timeout=0.5,
            ack_wait=settings.ack_wait_s,
            max_ack_pending=max(4 * settings.ingest_batch, 1024),
            description="query index replica (deliver all: each replica keeps a full index)",
            inactive_threshold=settings.consumer_inactive_s,
        )
        self.worker = PullWorker(bus, config, self.handle)

    async def handle(self, msgs: Sequence[Msg]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        batch: list[tuple[event_pb2.Event, int]] = []
        for msg in msgs:
            try:
                batch.append(parse_message(msg))
                outcomes.append(None)
            except MalformedMessageError as exc:
                outcomes.append(exc)
        if batch:
            try:
                changed = await asyncio.to_thread(self.index.upsert, batch)
            except Exception as exc:
                log.warning("index write failed (%s); batch will be redelivered", exc)
                raise TransientError(f"index write failed: {exc}") from exc
            INDEXED.inc(len(changed))
            self.hub.publish(changed)
        return outcomes

    async def run(self) -> None:
        await self.worker.run()

    async def stop(self) -> None:
        await self.worker.stop()
