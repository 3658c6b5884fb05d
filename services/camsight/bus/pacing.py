"""Lossless pacing: publish the next message only once the consumers caught up.

A publisher that must lose nothing (a video file analysed for reproducible
results) may not outrun its consumers, or the stream's per-subject limit
(newest messages win) would discard what they have not read yet. Polling
consumer state for every message would cost a request per frame; instead
the server tells us about every ack: a durable consumer created with
``sample_freq="100%"`` makes JetStream publish
``$JS.EVENT.METRIC.CONSUMER.ACK.<stream>.<consumer>`` (JSON with
``stream_seq``) for each message it acks.

Such consumers are the *pacing consumers* of a subject when their filter
matches it. :class:`PacedChannel` keeps the oldest message some pacing
consumer has not acknowledged within the newest ``window`` messages it
published: before each publish :meth:`PacedChannel.wait_turn` waits until
that holds for one more. A span, not a count of unacknowledged messages:
acks come out of order (replicas sharing a consumer, redeliveries after
``ack_wait``), and a stream that keeps the newest N messages per subject
evicts by age, so a message held by a dead replica while its neighbours
are acked must not fall out of the newest N before it is redelivered.

Advisories are core NATS (at-most-once): when no progress arrives for
``resync_s`` the channel reads each consumer's ``ack_floor`` (everything at
or below it is acked). Consumers appearing or disappearing are tracked via
the CREATED/DELETED advisories and a refresh of the list whenever a channel
has waited ``resync_s``. With no pacing consumer at all a channel waits
(``waiting_for_consumers`` is true): nobody would read the messages.

A *follower* (metadata :data:`FOLLOWER`) paces like any other pacing consumer
but does not make a subject read: it follows what others read (behavior
follows the frames the analyzers analyse, for its snapshots, decision 0079),
so a subject whose only pacing consumers are followers still waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from camsight.bus.connection import BUS_ERRORS, Bus

log = logging.getLogger(__name__)

ACK_METRIC = "$JS.EVENT.METRIC.CONSUMER.ACK.{stream}.*"
CONSUMER_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER.*.{stream}.*"
FULL_SAMPLE = ("100%", "100")
FOLLOWER = {"camsight_pacing": "follower"}
"""Consumer metadata of a pacing consumer that alone does not start a subject."""
_EARLY_ACKS = 8192


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    pat, sub = pattern.split("."), subject.split(".")
    for i, token in enumerate(pat):
        if token == ">":
            return len(sub) > i
        if i >= len(sub) or (token != "*" and token != sub[i]):
            return False
    return len(pat) == len(sub)


class ChannelClosedError(RuntimeError):
    """The channel was closed while a publisher waited on it."""


class AckPacer:
    """Follows the acks of the pacing consumers of one stream for many channels."""

    def __init__(self, bus: Bus, stream: str, resync_s: float = 1.0) -> None:
        self.bus = bus
        self.stream = stream
        self.resync_s = resync_s
        # consumer name -> its filter subjects (empty: the whole stream)
        self._consumers: dict[str, list[str]] = {}
        self._followers: set[str] = set()
        self._by_seq: dict[int, PacedChannel] = {}
        # Acks that arrived before their publisher registered the sequence.
        self._early: OrderedDict[int, set[str]] = OrderedDict()
        self._subs: list[Subscription] = []
        self._changed = asyncio.Event()

    async def start(self) -> None:
        self._subs = [
            await self.bus.nc.subscribe(ACK_METRIC.format(stream=self.stream), cb=self._on_ack),
            await self.bus.nc.subscribe(CONSUMER_ADVISORY.format(stream=self.stream), cb=self._on_consumer),
        ]
        await self.refresh()

    async def close(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        self._subs = []

    def channel(self, subject: str, window: int) -> PacedChannel:
        """A paced publisher of ``subject`` with at most ``window`` messages in flight."""
        return PacedChannel(self, subject, window)

    def consumers_for(self, subject: str) -> set[str]:
        """The pacing consumers of ``subject``, followers included."""
        return {
            name
            for name, filters in self._consumers.items()
            if not filters or any(subject_matches(f, subject) for f in filters)
        }

    def read(self, subject: str) -> bool:
        """Some pacing consumer of ``subject`` is not a follower: messages may be published."""
        return bool(self.consumers_for(subject) - self._followers)

    async def refresh(self) -> None:
        """Re-read the stream's pacing consumers (durable, full sampling)."""
        try:
            infos = await self.bus.js.consumers_info(self.stream)
        except BUS_ERRORS as exc:
            log.warning("cannot list consumers of %s: %s", self.stream, exc)
            return
        consumers: dict[str, list[str]] = {}
        followers: set[str] = set()
        for info in infos:
            cfg = info.config
            if cfg.durable_name and (cfg.sample_freq or "").strip() in FULL_SAMPLE:
                filters = list(cfg.filter_subjects or []) or (
                    [cfg.filter_subject] if cfg.filter_subject else []
                )
                consumers[info.name] = filters
                if FOLLOWER.items() <= (cfg.metadata or {}).items():
                    followers.add(info.name)
        for gone in set(self._consumers) - set(consumers):
            self._forget_consumer(gone)
        self._consumers, self._followers = consumers, followers
        self._changed.set()
        self._changed = asyncio.Event()

    async def _on_consumer(self, msg: Msg) -> None:
        await self.refresh()

    async def _on_ack(self, msg: Msg) -> None:
        try:
            data = json.loads(msg.data)
            consumer, seq = str(data["consumer"]), int(data["stream_seq"])
        except (ValueError, KeyError, TypeError):
            return
        channel = self._by_seq.get(seq)
        if channel is not None:
            channel._acked(seq, {consumer})
            return
        self._early.setdefault(seq, set()).add(consumer)
        self._early.move_to_end(seq)
        while len(self._early) > _EARLY_ACKS:
            self._early.popitem(last=False)

    def _forget_consumer(self, name: str) -> None:
        for seq, channel in list(self._by_seq.items()):
            channel._acked(seq, {name})

    async def _ack_floors(self, consumers: Iterable[str]) -> dict[str, int]:
        """Each consumer's ack floor (stream sequence); a vanished consumer floors at infinity."""
        floors: dict[str, int] = {}
        for name in consumers:
            try:
                info = await self.bus.js.consumer_info(self.stream, name)
            except nats.js.errors.NotFoundError:
                floors[name] = 1 << 62
                continue
            except BUS_ERRORS as exc:
                log.debug("consumer_info(%s) failed: %s", name, exc)
                continue
            floors[name] = info.ack_floor.stream_seq if info.ack_floor else 0
        return floors


class PacedChannel:
    """One paced subject (a camera): publish, register, wait for the window."""

    def __init__(self, pacer: AckPacer, subject: str, window: int) -> None:
        if window < 1:
            raise ValueError("pacing window must be at least 1")
        self.pacer = pacer
        self.subject = subject
        self.window = window
        self.waiting_for_consumers = False
        self._closed = False
        # stream seq -> (its number among the messages published(), the consumers that have
        # not acked it yet), oldest first
        self._inflight: OrderedDict[int, tuple[int, set[str]]] = OrderedDict()
        self._sent = 0  # messages registered by published()
        self._progress = asyncio.Event()

    @property
    def in_flight(self) -> int:
        """Messages published since the oldest one not acknowledged by every pacing consumer,
        that one included (0 when all are acknowledged): what ``window`` bounds."""
        return self._sent - self.acknowledged

    @property
    def acknowledged(self) -> int:
        """How many of the messages registered by :meth:`published`, oldest first, every pacing
        consumer acknowledged (or stopped pacing): the first ones that are out of the way."""
        if not self._inflight:
            return self._sent
        oldest, _ = next(iter(self._inflight.values()))
        return oldest

    def ready(self, reserved: int = 0) -> bool:
        """A message may be published now (what :meth:`wait_turn` would return at once for)."""
        return (
            not self._closed
            and self.in_flight <= self.window - 1 - reserved
            and self.pacer.read(self.subject)
        )

    async def wait_turn(self, reserved: int = 0) -> None:
        """Return once a message may be published (fewer than ``window`` in flight).

        ``reserved`` counts messages already sent whose PubAck (hence stream
        sequence) has not come back yet: they are in flight too.
        """
        await self._wait_until(self.window - 1 - reserved)

    async def drain(self) -> None:
        """Return once every published message was acked by every pacing consumer."""
        await self._wait_until(0)

    def published(self, stream_seq: int) -> None:
        """Register a message the stream stored (its PubAck's sequence)."""
        pending = self.pacer.consumers_for(self.subject) - self.pacer._early.pop(stream_seq, set())
        if pending:
            self._inflight[stream_seq] = (self._sent, pending)
            self.pacer._by_seq[stream_seq] = self
        self._sent += 1

    def close(self) -> None:
        """Forget everything in flight; a waiting publisher gets :class:`ChannelClosedError`."""
        self._closed = True
        for seq in self._inflight:
            self.pacer._by_seq.pop(seq, None)
        self._inflight.clear()
        self._progress.set()

    async def _wait_until(self, most: int) -> None:
        while True:
            if self._closed:
                raise ChannelClosedError(f"paced channel {self.subject} is closed")
            if not self.pacer.read(self.subject):
                self.waiting_for_consumers = True
                changed = self.pacer._changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), self.pacer.resync_s)
                if not changed.is_set():
                    await self.pacer.refresh()
                continue
            self.waiting_for_consumers = False
            if self.in_flight <= max(most, 0):
                return
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), self.pacer.resync_s)
            if not self._progress.is_set():
                await self._resync()

    async def _resync(self) -> None:
        """No ack heard for a while: advisories may have been lost; ask the server."""
        await self.pacer.refresh()
        waiting = set().union(*(pending for _, pending in self._inflight.values()))
        floors = await self.pacer._ack_floors(waiting)
        for seq in list(self._inflight):
            self._acked(seq, {name for name, floor in floors.items() if seq <= floor})

    def _acked(self, seq: int, consumers: set[str]) -> None:
        if seq not in self._inflight:
            return
        _, pending = self._inflight[seq]
        pending -= consumers
        if not pending:
            del self._inflight[seq]
            self.pacer._by_seq.pop(seq, None)
            self._progress.set()
