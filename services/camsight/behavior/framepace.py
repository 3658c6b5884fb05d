"""Behavior paces lossless cameras on its own progress, so snapshot frames stay on FRAMES.

Snapshots read the frame back from FRAMES, which keeps only the newest
``streams.frames_per_camera`` frames of each camera (decision 0043). The
decoder publishes a lossless camera at most ``pacing_window`` frames past
the oldest frame some *pacing consumer* of FRAMES has not acknowledged
(:mod:`camsight.bus.pacing`); the analyzers are such consumers, and so is
this one (decision 0079): a durable consumer per camera, ``behavior-frames-<camera>``,
fetched by the behavior replica that owns the camera, delivering headers only
(no image crosses the wire twice), acked once behavior has processed a result
of that frame or of a later one of the same camera. One per camera, not per
replica, so that following a new camera creates a consumer (the decoder
hears of it from the creation advisory at once) and disturbs no other
camera. The decoder learns about it only from the bus, like about the
analyzers; it is a *follower*: alone it does not start a camera, which still
waits for an analyzer.

A file never waits on behavior forever:

* behavior acknowledges every frame it holds whenever it has nothing to do
  (:meth:`FrameFollower.release_all`): a camera whose frames no result
  reaches (no analyzer answers it) goes on;
* a stopped replica's consumers are deleted by the server after
  ``frames_inactive_s`` without a fetch, and the decoder stops waiting for
  them; a replica back sooner goes on where it left off (the frames it
  lacked are still on FRAMES if it is back within ``streams.frames_max_age_s``,
  30 s; later, at most the window's frames expired meanwhile); what the
  previous process held comes again after :data:`REDELIVER_S`;
* a camera that leaves the registry takes its consumer with it;
* no behavior (``camsight run`` with no rule, a deployment without it): no
  such consumer, nothing to wait for.

Live cameras (network streams, webcams, cameras paced ``realtime``) are not paced
by anybody, so behavior does not follow them: a follower there would cost a header
and an ack per frame, and redeliveries every :data:`REDELIVER_S` while behavior lags,
for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from camsight.bus import Bus, WorkerConfig, subjects
from camsight.bus.pacing import FOLLOWER
from camsight.bus.worker import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

MAX_HELD = 1 << 16
"""Frames a camera's consumer may hold unacknowledged: far above the window."""
REDELIVER_S = 2.0
"""A frame held this long comes again: after a restart, what the previous process held is
back within this (the new one acks it once past it), not after a long ``ack_wait``."""
FOLLOW_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, nats.js.errors.Error)
"""What the bus may answer to creating, binding or fetching: tried again after :data:`RETRY_S`."""
RETRY_S = 1.0
"""Wait before trying to create or fetch from a camera's consumer again after a bus error."""


def durable(camera_id: str) -> str:
    return f"behavior-frames-{camera_id}"


class Held:
    """A camera's delivered frames not acknowledged yet, taken oldest first in O(log n) a
    frame: a lagging behavior holds many, and is told it got past one per result."""

    def __init__(self) -> None:
        self.msgs: dict[int, Msg] = {}  # FRAMES sequence -> its delivered message
        self._order: list[int] = []  # a heap of the keys of ``msgs``

    def add(self, seq: int, msg: Msg) -> None:
        if seq not in self.msgs:
            heapq.heappush(self._order, seq)
        self.msgs[seq] = msg  # a redelivery replaces the first

    def upto(self, seq: int) -> list[Msg]:
        """Take out the frames at ``seq`` and before."""
        out = []
        while self._order and self._order[0] <= seq:
            out.append(self.msgs.pop(heapq.heappop(self._order)))
        return out


class FrameFollower:
    """Follows the frames of the cameras a replica owns; acks them as behavior gets past them."""

    def __init__(self, bus: Bus, inactive_s: float) -> None:
        self.bus = bus
        self.inactive_s = inactive_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._held: dict[str, Held] = {}
        # camera -> the newest FRAMES sequence behavior got past
        self._done: dict[str, int] = {}

    def consumer(self, camera_id: str) -> ConsumerConfig:
        config = WorkerConfig(
            stream=subjects.FRAMES_STREAM,
            durable=durable(camera_id),
            filter_subjects=[subjects.frames(camera_id)],
            ack_wait=REDELIVER_S,
            max_deliver=-1,  # held as long as behavior lags
            max_ack_pending=MAX_HELD,
            deliver_policy=DeliverPolicy.NEW,
            inactive_threshold=self.inactive_s,
            sample_freq="100%",
            description="behavior: paces a lossless camera on its snapshots (decision 0079)",
        )
        return dataclasses.replace(config.consumer_config(), headers_only=True, metadata=dict(FOLLOWER))

    def follow(self, camera_id: str) -> None:
        """Start following ``camera_id`` (no-op when already)."""
        if camera_id not in self._tasks:
            self._tasks[camera_id] = asyncio.create_task(self._fetch(camera_id), name=durable(camera_id))

    async def unfollow(self, camera_id: str) -> None:
        """The camera left the registry or is not lossless (any more): its consumer goes, and
        the decoder stops waiting on it. A camera not followed costs nothing here."""
        if camera_id not in self._tasks:
            return
        await self._stop(camera_id)
        self._held.pop(camera_id, None)
        self._done.pop(camera_id, None)
        with contextlib.suppress(NotFoundError, *TRANSIENT_ERRORS):
            await self.bus.js.delete_consumer(subjects.FRAMES_STREAM, durable(camera_id))

    async def close(self) -> None:
        """Stop fetching; the consumers stay, for this replica back soon (or expire)."""
        for camera_id in list(self._tasks):
            await self._stop(camera_id)

    async def _stop(self, camera_id: str) -> None:
        if (task := self._tasks.pop(camera_id, None)) is not None:
            self._interrupt(task)
            await asyncio.wait({task})  # a cancellation of the caller itself still propagates
            with contextlib.suppress(asyncio.CancelledError):
                task.result()

    @staticmethod
    def _interrupt(task: asyncio.Task[None]) -> None:
        """Cut the task's fetch short. Not all it takes to stop it: nats-py's ``next_msg``
        waits in an inner ``wait_for`` task, and Python 3.11 loses a cancellation that
        lands as a frame arrives (the frame is returned instead). The loop in
        :meth:`_fetch` therefore also ends once it is no longer the camera's task: a lost
        cancellation held a stopping replica (and its lock) for good, once in a CI run."""
        task.cancel()

    async def _fetch(self, camera_id: str) -> None:
        """Create (or bind to) the camera's consumer and take in its frames until
        :meth:`_stop` takes this task out (and cancels it)."""
        sub = None
        try:
            while self._tasks.get(camera_id) is asyncio.current_task():
                try:
                    if sub is None:
                        await self.bus.js.add_consumer(subjects.FRAMES_STREAM, self.consumer(camera_id))
                        name = durable(camera_id)
                        sub = await self.bus.js.pull_subscribe_bind(name, subjects.FRAMES_STREAM)
                    for msg in await sub.fetch(256, timeout=1.0):
                        await self._arrived(camera_id, msg)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue
                except FOLLOW_ERRORS as exc:
                    log.warning("following the frames of camera %s: %s; trying again", camera_id, exc)
                    # Unsubscribed before it is dropped: a subscription left open holds the
                    # connection's drain at shutdown for its whole timeout (30 s after a
                    # NATS restart).
                    await _unsubscribe(sub)
                    sub = None
                    await asyncio.sleep(RETRY_S)  # back-off, not a synchronisation
        finally:
            await _unsubscribe(sub)

    async def _arrived(self, camera_id: str, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq <= self._done.get(camera_id, 0):
            await _ack(msg)
        else:
            self._held.setdefault(camera_id, Held()).add(seq, msg)

    async def done(self, camera_id: str, frame_seq: int) -> None:
        """Behavior processed a result of the camera's frame at FRAMES sequence ``frame_seq``:
        that frame and every earlier one of the camera may leave FRAMES."""
        if camera_id not in self._tasks or frame_seq <= self._done.get(camera_id, 0):
            return
        self._done[camera_id] = frame_seq
        if (held := self._held.get(camera_id)) is not None:
            for msg in held.upto(frame_seq):
                await _ack(msg)

    async def release_all(self) -> None:
        """Behavior has nothing to do: whatever it holds, no result of it is on the way to it."""
        for camera_id, held in list(self._held.items()):
            if held.msgs:
                await self.done(camera_id, max(held.msgs))


async def _unsubscribe(sub: JetStreamContext.PullSubscription | None) -> None:
    if sub is not None:
        with contextlib.suppress(*TRANSIENT_ERRORS, nats.errors.BadSubscriptionError):
            await sub.unsubscribe()


async def _ack(msg: Msg) -> None:
    """A lost ack is no loss: the frame is redelivered after ``REDELIVER_S`` and acked then."""
    with contextlib.suppress(*TRANSIENT_ERRORS):
        await msg.ack()
