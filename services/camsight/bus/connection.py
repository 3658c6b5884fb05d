"""Connecting to NATS and publishing camsight's protobuf messages.

:class:`Bus` wraps one NATS connection and its JetStream context. Reconnects
are unlimited with jittered delays, so a NATS restart costs a service a few
seconds of not-ready, never its life. :class:`Link` counts the connection's
losses: a restarted nats-server may have lost what it kept in memory (the
FRAMES stream, the decoder's lease bucket, their consumers), so whoever
depends on those looks again after each loss (decision 0083).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Mapping
from typing import Any

import nats
import nats.errors
from google.protobuf.message import Message
from nats.aio.client import Client, Server
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, PubAck, StreamInfo
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore
from nats.protocol.parser import PERMISSIONS_ERR

from camsight.bus import subjects, tls
from camsight.bus.topology import ClusterFormingError, check_topology, ensure_topology
from camsight.config import ConfigError, NatsSettings, StreamSettings
from camsight.retry import Backoff, retry_async
from camsight.v1 import event_pb2

log = logging.getLogger(__name__)

BUS_ERRORS = (nats.errors.Error, TimeoutError)
"""What a bus call raises when NATS is unreachable, slow or refuses: caught by callers
that can go on without the answer (and try again later)."""


class Link:
    """How many times a connection was lost, and whether it is up: fed by nats-py's callbacks.

    A count rather than a flag, so that a waiter learns of a loss even when the
    connection came back before it looked: the server it reconnected to may have
    restarted and lost its memory streams meanwhile.
    """

    def __init__(self) -> None:
        self.losses = 0
        self.up = True
        # The server's latest permissions violations, as nats-py words them (bounded: a
        # long-lived service refused something again and again keeps only the latest).
        self.refusals: collections.deque[str] = collections.deque(maxlen=64)
        self._changed = asyncio.Condition()

    async def refused(self, error: str) -> None:
        """The server refused this user something: it answers nothing, the request times out."""
        self.refusals.append(error)
        async with self._changed:
            self._changed.notify_all()

    async def wait_refused(self, subject_prefix: str) -> None:
        """Return once the server refused a subject starting with ``subject_prefix``: a
        caller whose request can only time out learns why at once. nats-py lower-cases the
        server's error, subject included, so the prefix is compared in lower case."""
        wanted = f'"{subject_prefix.lower()}'
        async with self._changed:
            await self._changed.wait_for(lambda: any(wanted in r.lower() for r in self.refusals))

    async def lost(self) -> None:
        self.losses += 1
        self.up = False
        async with self._changed:
            self._changed.notify_all()

    async def restored(self) -> None:
        self.up = True
        async with self._changed:
            self._changed.notify_all()

    async def wait_up(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.up)

    async def wait_lost(self, since: int) -> None:
        """Return once the connection was lost more often than ``since`` times."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.losses > since)


class Bus:
    """One NATS connection with JetStream, as camsight uses it."""

    def __init__(self, nc: Client, streams: StreamSettings, link: Link | None = None) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.streams = streams
        self.link = link or Link()
        self._kv: dict[str, KeyValue] = {}
        self._obj: dict[str, ObjectStore] = {}

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def has_stream(self, stream: str) -> bool:
        """Whether ``stream`` exists (a restarted nats-server has no memory stream until the
        topology is declared again)."""
        try:
            await self.js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return False
        return True

    async def ensure_topology(
        self,
        *,
        attempts: int | None = 30,
        retry_on: tuple[type[BaseException], ...] = (ClusterFormingError,),
    ) -> None:
        """Declare streams, buckets and object stores (idempotent).

        Retried with back-off (about a minute in all by default) while a JetStream
        cluster is still forming, so a topology step started with the NATS nodes waits
        for them; ``retry_on`` adds errors to wait out (the topology Job adds timeouts:
        a cluster without a meta leader does not answer).
        """

        def waiting(error: BaseException, wait: float) -> None:
            log.info("JetStream not ready (%s): retrying in %.1fs", error or type(error).__name__, wait)

        await retry_async(
            lambda: ensure_topology(self.js, self.streams),
            on=retry_on,
            backoff=Backoff(0.5, 4.0),
            attempts=attempts,
            on_retry=waiting,
        )

    async def check_topology(self) -> None:
        """Raise :class:`camsight.bus.topology.TopologyMissingError` unless everything is declared.

        For processes whose NATS user may not create streams: they wait for
        the privileged step (``camsight topology``) instead.
        """
        await check_topology(self.js)

    async def publish(
        self,
        subject: str,
        message: Message | bytes,
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> PubAck:
        """Publish to JetStream and wait for the stream's acknowledgement.

        ``msg_id`` becomes ``Nats-Msg-Id``: within the stream's duplicate
        window a second publish with the same id is stored once.
        """
        payload = message if isinstance(message, bytes) else message.SerializeToString()
        hdrs: dict[str, str] = dict(headers or {})
        if msg_id:
            hdrs[subjects.MSG_ID_HEADER] = msg_id
        return await self.js.publish(subject, payload, timeout=timeout, headers=hdrs or None)

    async def publish_event(
        self, event: event_pb2.Event, timeout: float = 5.0, msg_id: str | None = None
    ) -> PubAck:
        """Publish an event on ``events.<type>.<camera>``, de-duplicated by ``msg_id`` (by
        default its id, state and revision)."""
        msg_id = msg_id or f"{event.id}/{event_pb2.EventState.Name(event.state)}/{event.revision}"
        return await self.publish(
            subjects.events(event.type, event.camera_id), event, msg_id=msg_id, timeout=timeout
        )

    async def kv(self, bucket: str) -> KeyValue:
        if bucket not in self._kv:
            self._kv[bucket] = await self.js.key_value(bucket)
        return self._kv[bucket]

    async def kv_keys(self, bucket: str, match: str = ">") -> list[str]:
        """The keys of a KV bucket (those matching ``match``), sorted, from the server's per-subject counts.

        Not ``KeyValue.keys()``: nats-py builds that from a watcher whose
        "no more" marker can come before the keys, so it sometimes answered
        "no keys" for a bucket that had some. A key deleted a moment ago may
        still be listed (its delete marker is stored): reading it says so.
        """
        keys, _ = await self.kv_listing(bucket, match)
        return keys

    async def kv_listing(self, bucket: str, match: str = ">") -> tuple[list[str], StreamInfo]:
        """:meth:`kv_keys`, and the stream info they come from (which bucket that is: when it was
        created, its last sequence)."""
        prefix = f"$KV.{bucket}."
        info = await self.js.stream_info(f"KV_{bucket}", subjects_filter=prefix + match)
        return sorted(s.removeprefix(prefix) for s in (info.state.subjects or {})), info

    async def object_store(self, name: str) -> ObjectStore:
        if name not in self._obj:
            self._obj[name] = await self.js.object_store(name)
        return self._obj[name]

    async def direct_get(
        self, stream: str, seq: int | None = None, *, last_on: str | None = None
    ) -> bytes | None:
        """A message of ``stream`` by sequence (a frame's claim check), or the newest it holds
        on subject ``last_on``; None when there is none (any more)."""
        try:
            msg = await self.js.get_msg(stream, seq=seq, subject=last_on, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        return msg.data

    async def read_stream(self, stream: str, subject: str, batch: int = 256) -> list[bytes]:
        """Every message stored in ``stream`` on ``subject`` (wildcards allowed), oldest first.

        Uses a short-lived ephemeral pull consumer; meant for reports and
        tools that read what a run produced, not for live processing.
        """
        sub = await self.js.pull_subscribe(
            subject, stream=stream, config=ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=30.0)
        )
        payloads: list[bytes] = []
        try:
            while (await sub.consumer_info()).num_pending:
                payloads.extend(m.data for m in await sub.fetch(batch, timeout=5))
        finally:
            await sub.unsubscribe()
        return payloads

    async def close(self) -> None:
        """Drain subscriptions, flush and close; with the server gone, just close."""
        if self.nc.is_closed:
            return
        try:
            await self.nc.drain()
        except (
            nats.errors.ConnectionClosedError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.FlushTimeoutError,
            TimeoutError,
        ):
            # Closing flushes too: with no server (a service stopped while NATS is down)
            # the socket's writer raises, after the client has let everything go.
            with contextlib.suppress(OSError):
                await self.nc.close()


def _jittered(cfg: NatsSettings) -> Any:
    """Pick the server tried least often and wait ``reconnect_wait`` plus jitter.

    Jitter keeps a fleet of services from reconnecting in lock step after a
    NATS restart.
    """

    def choose(servers: list[Server], _info: dict[str, Any]) -> tuple[Server | None, float]:
        server = min(servers, key=lambda s: s.reconnects)
        delay = 0.0 if server.reconnects == 0 else cfg.reconnect_wait_s
        return server, delay + random.uniform(0, cfg.reconnect_jitter_s)

    return choose


def connection_options(cfg: NatsSettings, name: str) -> dict[str, Any]:
    """Keyword arguments for :func:`nats.connect` from the settings."""
    options: dict[str, Any] = {
        "servers": cfg.servers,
        "name": name,
        "connect_timeout": cfg.connect_timeout_s,
        "reconnect_time_wait": cfg.reconnect_wait_s,
        "max_reconnect_attempts": -1,
        "allow_reconnect": True,
        "reconnect_to_server_handler": _jittered(cfg),
        "tls": tls.context(cfg),
        # Every reply subject the client makes (requests, JetStream API, fetches,
        # watches) starts with it; a per-service user may subscribe only below its own.
        "inbox_prefix": cfg.inbox_prefix,
    }
    if cfg.user:
        options["user"] = cfg.user
    if cfg.password:
        options["password"] = cfg.password.get_secret_value()
    if cfg.token:
        options["token"] = cfg.token.get_secret_value()
    if cfg.creds_file:
        options["user_credentials"] = str(cfg.creds_file)
    if cfg.nkey_seed_file:
        options["nkeys_seed"] = str(cfg.nkey_seed_file)
    return options


async def connect(cfg: NatsSettings, streams: StreamSettings, name: str) -> Bus:
    """Connect once; raises when no server answers, and ConfigError at once for a TLS
    failure that no retry mends (see :mod:`camsight.bus.tls`)."""
    client: list[Client] = []
    link = Link()
    options = connection_options(cfg, name)
    refused: asyncio.Future[ConfigError] = asyncio.get_running_loop().create_future()

    def closing() -> bool:
        return bool(client) and (client[0].is_closed or client[0].is_draining)

    async def on_error(exc: Exception) -> None:
        if PERMISSIONS_ERR in str(exc):
            await link.refused(str(exc))
        final = None if client else tls.refusal(exc, cfg)
        if final is not None:
            if not refused.done():
                refused.set_result(final)
        elif not closing():
            log.warning("nats: %s", exc)

    async def on_disconnect() -> None:
        await link.lost()
        if not closing():
            log.warning("nats: disconnected, reconnecting")

    async def on_reconnect() -> None:
        await link.restored()
        log.info("nats: reconnected")

    connecting = asyncio.ensure_future(
        nats.connect(**options, error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect)
    )
    waiting: list[asyncio.Future[Any]] = [connecting, refused]
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
    if refused.done():
        raise refused.result()
    nc = connecting.result()  # or its error
    client.append(nc)
    return Bus(nc, streams, link)


async def connect_with_retry(
    cfg: NatsSettings, streams: StreamSettings, name: str, *, max_delay: float = 30.0
) -> Bus:
    """Connect, retrying with capped exponential back-off and jitter until it works.

    Services call this at start: while NATS is unreachable they stay up and
    not-ready instead of crashing into a restart loop.
    """

    def unreachable(exc: BaseException, delay: float) -> None:
        log.warning("nats unreachable (%s); retrying in %.1fs", exc, delay)

    return await retry_async(
        lambda: connect(cfg, streams, name),
        on=(OSError, TimeoutError, nats.errors.Error),
        backoff=Backoff(cfg.reconnect_wait_s, max_delay),
        on_retry=unreachable,
    )
