"""One camera: a decode thread and a publisher task joined by a small bounded queue.

The thread does the blocking work (open, grab, sample, resize, JPEG encode,
back-off sleeps) so the event loop never blocks; the publisher task on the
loop publishes frames in order and reports state changes. The thread hands
frames over in batches; the queue holds at most ``queue_frames`` of them:
decoding overlaps publishing, and memory stays bounded.

* Lossless pacing (files by default): batches of ``publish_batch`` frames.
  The thread blocks when the queue is full, and the publisher waits until
  the :class:`PacedChannel` has room for a whole batch, then sends it at
  once, so no frame is lost and the analyzers set the pace. Batches are what
  makes full speed cheap: every process on the path (this event loop, the
  nats-server, the analyzer) wakes once per batch instead of once per frame.
  With ``encode_thread`` (the default), resize, encode and hand-over run on a
  second thread (:class:`~camsight.decoder.stage.ThreadStage`), so the next
  picture decodes meanwhile.
* Real time (live sources always; files with ``pacing: realtime``): batches
  of one frame, sent as soon as decoded. The thread never waits for the
  publisher: a frame that finds the queue full is dropped and counted, and
  files are played at their media rate.

FRAMES is a memory stream. Once the connection was lost, and whenever the
analyzers' acks stall, a lossless camera checks that FRAMES still holds the
oldest frame it stored that they have not all acknowledged; if the nats-server
lost it (came back with a new FRAMES, or in a cluster with the same one
emptied), the frames after the last one they all acknowledged are gone, and
the camera stops and asks to be decoded again from there
(:meth:`CameraWorker.rewind_point`, decision 0083). It never marks a file ``ended``
unless every frame of it was acknowledged in the FRAMES it was stored in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import cv2
import nats.errors
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js.api import PubAck

from camsight.bus import BUS_ERRORS, Bus, subjects
from camsight.bus.pacing import AckPacer, PacedChannel
from camsight.cameras import CameraConfig, VideoDecode
from camsight.decoder.frames import Encoded, FpsSampler
from camsight.decoder.nvdec import open_nvdec
from camsight.decoder.nvjpeg import FrameEncoder
from camsight.decoder.plugins import SourceRegistry, default_sources
from camsight.decoder.resume import Owed, Resume, holds
from camsight.decoder.settings import DecoderSettings
from camsight.decoder.sources import (
    EndOfSource,
    Measured,
    Picture,
    Source,
    SourceError,
    SourceKind,
    classify,
    open_source,
    recording_start,
)
from camsight.decoder.stage import StageFailed, ThreadStage
from camsight.decoder.status import State, StatusReporter, now_ts
from camsight.retry import Backoff
from camsight.v1 import camera_pb2, frame_pb2

log = logging.getLogger(__name__)

LIVE = (SourceKind.NETWORK, SourceKind.WEBCAM)
ENCODE_QUEUE = 4  # decoded pictures waiting for a lossless camera's encoder (25 MB each at 4K)
WAITING_FOR_ANALYZERS = "waiting for analyzers: no durable consumer with sample_freq 100% reads {subject}"


@dataclass
class _Taken:
    """When a picture was taken, and how far into its file."""

    media_time: float
    capture_time: Timestamp
    progress: float  # of the file, once this picture is out (0 for live sources)


@dataclass
class _Picture(_Taken):
    """A decoded picture on its way to the encoder."""

    image: Picture


@dataclass
class _Frame(_Taken):
    """An encoded picture on its way to the publisher."""

    encoded: Encoded


@dataclass
class _End:
    """The source ended after the last frame (at ``media_time``): publish the end marker."""

    media_time: float


@dataclass
class _State:
    state: State
    error: str | None = None
    end: bool = False
    """The source was read to its end: every frame must be acknowledged before the state."""


@dataclass
class _Sent:
    """A frame sent to the stream whose PubAck is not settled yet."""

    task: asyncio.Task[PubAck]
    frame: frame_pb2.Frame
    progress: float  # the file's, once this frame is published


@dataclass(frozen=True)
class _Stored:
    """A frame (or the end marker) FRAMES stored, not known to be acknowledged by every
    pacing consumer yet."""

    seq: int
    media_time: float
    capture_time: Timestamp
    stream_seq: int = 0


class _Halt(Exception):
    """The publisher stops without losing anything: the lease lapsed, or FRAMES lost frames."""


class FramesLost(_Halt):
    """FRAMES no longer holds the newest frame this camera stored: the server lost it."""


_DONE = object()
_CORRUPT = object()  # the thread side counts a corrupt frame (in order, on one thread)


def _failure(exc: Exception) -> _State:
    """The error state of a camera whose thread side died: which thread, and the error's type."""
    if isinstance(exc, StageFailed):  # raised from the encode stage's own error
        return _State(camera_pb2.CAMERA_STATE_ERROR, f"encoder failure: {type(exc.__cause__).__name__}")
    return _State(camera_pb2.CAMERA_STATE_ERROR, f"decoder failure: {type(exc).__name__}")


class CameraWorker:
    """Decodes and publishes one camera until stopped (or its file ends)."""

    def __init__(
        self,
        bus: Bus,
        config: CameraConfig,
        settings: DecoderSettings,
        status: StatusReporter,
        pacer: AckPacer,
        licensed: Callable[[], bool] = lambda: True,
        resume: Resume | None = None,
        sources: SourceRegistry | None = None,
        on_rewind: Callable[[], None] = lambda: None,
    ) -> None:
        self.bus = bus
        self.sources = sources or default_sources()
        # False once this replica's lease on the camera may have expired: publish nothing more.
        self.licensed = licensed
        self.config = config
        self.settings = settings
        self.status = status
        self.subject = subjects.frames(config.id)
        self.kind, _ = classify(config.source)
        self.lossless = config.lossless
        self.channel: PacedChannel | None = (
            pacer.channel(self.subject, settings.pacing_window) if self.lossless else None
        )
        self._stop = threading.Event()
        self._backoff = Backoff(settings.backoff_min_s, settings.backoff_max_s)
        self._reconnect = threading.Event()
        self._origin: Timestamp | None = resume.origin if resume else None
        """A file's media origin (Frame.media_origin), set at its first picture."""
        self._slots = threading.Semaphore(settings.queue_frames)  # batches queued
        self._pictures: list[_Picture] = []  # decoded on the GPU, to be encoded together
        self._batch: list[_Frame] = []  # the decode thread's, not handed over yet
        self._batch_size = settings.publish_batch if self.lossless else 1
        # Where the decode thread passes pictures and state changes: straight to delivery, or
        # through the encode stage (lossless with encode_thread), in order either way.
        self._pass_on: Callable[[object], None] = self._deliver
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._resume = resume
        self._seq = resume.seq if resume else 0
        self._replay = dict(resume.replay) if resume else {}
        self._pending: deque[_Sent] = deque()
        # Lossless: where the analyzers stand, for a rewind (decision 0083).
        self._floor = (
            _Stored(resume.seq, resume.media_time, Timestamp()) if resume else _Stored(0, 0.0, Timestamp())
        )
        """The newest frame every pacing consumer acknowledged."""
        self._stored: deque[_Stored] = deque()  # registered with the channel, after the floor
        self._counted = 0  # of the channel's registered messages, those taken into the floor
        self._checked = -1  # the connection's losses when FRAMES was last checked (-1: never)
        self._halted = False
        self._on_rewind = on_rewind
        self._last_frame = time.monotonic()
        self._fallback_warned = False
        self._short_warned = False  # a looped file's truncation, said once
        self._encoder = FrameEncoder(config, settings.encode)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.status.set_state(camera_pb2.CAMERA_STATE_STARTING, "")
        self._thread = threading.Thread(target=self._decode, name=f"decoder-{self.config.id}", daemon=True)
        self._thread.start()
        self._tasks = [
            asyncio.create_task(self._publish_loop(), name=f"publish-{self.config.id}"),
            asyncio.create_task(self._report_loop(), name=f"status-{self.config.id}"),
        ]

    async def stop(self) -> None:
        """Stop publishing at once; the thread ends by itself after its current read (see join).

        Frames already sent are counted as published when their PubAck comes
        back within ``publish_timeout_s``, else as dropped: the final status
        accounts for every frame.
        """
        self._stop.set()
        self._slots.release()  # unblock a thread waiting for queue space
        if self.channel is not None:
            self.channel.close()
        # Cancellation alone is not enough: asyncio.wait_for on Python 3.11 can swallow a
        # cancel that races with its inner result. The sentinel and the flag end the loop too.
        self._queue.put_nowait(_DONE)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=self.settings.publish_timeout_s + 1)
            for task in late:
                log.warning("camera %s: task %s did not stop", self.config.id, task.get_name())
        await self._settle_in_flight()

    async def _settle_in_flight(self) -> None:
        """Count what was sent before the stop: published if the server stored it, else dropped
        (real time only: a lossless file's frame is decoded again by whoever goes on with it).
        A halted publisher counts nothing: what it sent is sent again after the rewind."""
        if self._pending and not self._halted:
            await asyncio.wait([sent.task for sent in self._pending], timeout=self.settings.publish_timeout_s)
        while self._pending:
            sent = self._pending.popleft()
            stored = sent.task.done() and not sent.task.cancelled() and sent.task.exception() is None
            if not stored:
                sent.task.cancel()
            if sent.frame.end_of_stream or self._halted:
                continue
            if stored:
                self.status.frame_published(sent.progress)
            elif not self.lossless:
                self.status.frame_dropped()

    @property
    def halted(self) -> bool:
        """The publisher stopped by itself (lease lapsed, FRAMES lost): the camera must be
        started again, from :meth:`rewind_point` if FRAMES lost its frames."""
        return self._halted

    @property
    def finished(self) -> bool:
        """The decode thread has ended."""
        return self._thread is None or not self._thread.is_alive()

    async def join(self) -> None:
        """Wait for the decode thread (a network read returns within its read timeout)."""
        if self._thread is not None:
            await asyncio.to_thread(
                self._thread.join, self.settings.open_timeout_s + self.settings.watchdog_s
            )

    # -- event loop side -------------------------------------------------

    async def _publish_loop(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if self._stop.is_set():
                    return
                if item is _DONE:
                    await self._settle_all()
                    return
                if isinstance(item, _State):
                    await self._settle_all()  # statuses follow the frames before them
                    await self._apply_state(item)
                elif isinstance(item, list):
                    await self._publish([(self._message(frame), frame.progress) for frame in item])
                    self._slots.release()
                elif isinstance(item, _End):
                    await self._publish([(self._end_marker(item), self.status.progress)])
        except _Halt as halt:
            self._halted = True
            self._stop.set()  # the decode thread must not wait for this publisher either
            if isinstance(halt, FramesLost) and (rewind := self.rewind_point()) is not None:
                log.warning(
                    "camera %s: FRAMES lost the frames the analyzers had not acknowledged (a restart "
                    "of its nats-server: it is a memory stream); decoding again after frame %d "
                    "(media time %.3fs)",
                    self.config.id,
                    rewind.seq,
                    rewind.media_time,
                    extra={"camera": self.config.id},
                )
                self._on_rewind()
        except Exception as exc:
            if self._stop.is_set():
                return  # e.g. the paced channel closed under a waiting publisher
            log.exception("camera %s publisher failed", self.config.id)
            self._stop.set()  # the decode thread must not wait for a publisher that is gone
            await self.status.set_state(
                camera_pb2.CAMERA_STATE_ERROR, f"publisher failure: {type(exc).__name__}"
            )

    async def _apply_state(self, item: _State) -> None:
        if item.end and self.channel is not None:
            # "Ended" means every analyzer has seen every frame, in the FRAMES they went to.
            await self._paced(self.channel, self.channel.drain())
            await self._frames_checked()
        if item.state == camera_pb2.CAMERA_STATE_ENDED:
            self.status.progress = 1.0
        await self.status.set_state(item.state, item.error)

    def _message(self, item: _Frame) -> frame_pb2.Frame:
        return frame_pb2.Frame(
            camera_id=self.config.id,
            capture_time=item.capture_time,
            media_time=_duration(item.media_time),
            width=item.encoded.width,
            height=item.encoded.height,
            encoding=frame_pb2.IMAGE_ENCODING_JPEG,
            data=item.encoded.data,
            source_width=item.encoded.source_width,
            source_height=item.encoded.source_height,
            paced=self.lossless,
            analyzers=self.config.analyzers,
            camera_revision=self.status.camera_revision,
            media_origin=self._origin,
        )

    def _end_marker(self, item: _End) -> frame_pb2.Frame:
        """A Frame with no picture that says the source ended (see Frame.end_of_stream)."""
        return frame_pb2.Frame(
            camera_id=self.config.id,
            capture_time=now_ts(),
            media_time=_duration(item.media_time),
            paced=self.lossless,
            analyzers=self.config.analyzers,
            end_of_stream=True,
            camera_revision=self.status.camera_revision,
            media_origin=self._origin,
        )

    async def _publish(self, batch: list[tuple[frame_pb2.Frame, float]]) -> None:
        """Number and send a batch of frames (with their progress) back to back, without
        waiting for their PubAcks (acks are settled in order later).

        Waiting for each PubAck before sending the next frame would make the
        server's round trip, not decoding, set the frame rate.
        """
        while self._pending and len(self._pending) + len(batch) > self.settings.pacing_window:
            await self._settle_oldest()
        if self.channel is not None:
            await self._wait_turn(self.channel, room=len(batch))
            await self._frames_checked()
        if not self.licensed():
            raise _Halt("the lease lapsed: the service is about to stop this camera")
        for frame, progress in batch:
            self._seq += 1
            frame.seq = self._seq
            if (taken := self._replay.pop(self._seq, None)) is not None:
                frame.capture_time.CopyFrom(taken)  # the same frame again, not a restart
            self._pending.append(_Sent(self._send(frame), frame, progress))

    def _send(self, frame: frame_pb2.Frame) -> asyncio.Task[PubAck]:
        # Tasks start in creation order, so frames reach the server in seq order.
        return asyncio.ensure_future(self._send_now(frame))

    async def _send_now(self, frame: frame_pb2.Frame) -> PubAck:
        """Publish, unless the connection is down: nats-py would buffer the frame and send it
        once reconnected, into a FRAMES that may be another one by then, ahead of the frames
        a rewind sends again (checked and sent with no await in between)."""
        if self.lossless and not self.bus.connected:
            raise nats.errors.ConnectionReconnectingError
        return await self.bus.publish(self.subject, frame, timeout=self.settings.publish_timeout_s)

    async def _frames_checked(self, again: bool = False) -> None:
        """Lossless: return once FRAMES is known to hold what the analyzers still owe this camera
        an ack for, checked after every loss of the connection (and now, ``again``); raise
        :class:`FramesLost` when it does not (a memory stream does not survive a restart of its
        nats-server)."""
        link = self.bus.link
        while again or self._checked != link.losses or not link.up:
            again = False
            await link.wait_up()
            losses = link.losses
            try:
                kept = await self._keeps_owed()
            except BUS_ERRORS as exc:
                log.debug("camera %s: cannot check FRAMES: %s", self.config.id, exc)
                kept = None
            if kept is None:
                await asyncio.sleep(self.settings.backoff_min_s)
                again = True
                continue
            if not kept:
                raise FramesLost(f"FRAMES lost frame {self._owed()} of camera {self.config.id}")
            self._checked = losses

    async def _keeps_owed(self) -> bool | None:
        """Whether FRAMES holds what the analyzers owe this camera; None while FRAMES does not
        exist (a restarted server, the topology not declared yet), which the status says."""
        if await self.bus.has_stream(subjects.FRAMES_STREAM):
            self._count_acknowledged()  # what they acknowledged is owed no more
            return await holds(self.bus, self.config.id, self._owed())
        waiting = f"waiting for stream {subjects.FRAMES_STREAM}"
        await self.status.set_state(camera_pb2.CAMERA_STATE_STARTING, waiting)
        return None

    def _owed(self) -> Owed | None:
        """The oldest frame FRAMES stored that some pacing consumer may not have acknowledged."""
        return Owed(self._stored[0].stream_seq, self._stored[0].seq) if self._stored else None

    def _count_acknowledged(self) -> None:
        """Move the floor past the frames every pacing consumer acknowledged; not once the
        connection was lost until FRAMES was checked again, since a consumer lost with the
        stream counts as one that acknowledged everything."""
        if self.channel is None or self._checked != self.bus.link.losses or not self.bus.link.up:
            return
        while self._counted < self.channel.acknowledged and self._stored:
            self._floor = self._stored.popleft()
            self._counted += 1

    def rewind_point(self) -> Resume | None:
        """Lossless: where decoding goes on without losing a frame if FRAMES lost what this
        camera sent: after the newest frame every pacing consumer acknowledged, with the
        capture times of those after it that may have reached one (see :class:`Resume`)."""
        if self.channel is None:
            return None
        sent = {s.seq: s.capture_time for s in self._stored}
        sent |= {s.frame.seq: s.frame.capture_time for s in self._pending if s.frame.seq}
        replay = {seq: t for seq, t in self._replay.items() if seq > self._floor.seq} | sent
        return Resume(self._floor.seq, self._floor.media_time, self._origin, replay, self._owed())

    async def _settle_all(self) -> None:
        while self._pending:
            await self._settle_oldest()

    async def _settle_oldest(self) -> None:
        """Wait for the oldest frame's PubAck; retry it (lossless) or count it dropped."""
        sent = self._pending[0]
        while True:
            try:
                ack = await asyncio.shield(sent.task)  # a stop() mid-wait still learns the outcome
                break
            except BUS_ERRORS as exc:
                if not self.lossless and not sent.frame.end_of_stream:
                    self._pending.popleft()
                    self.status.frame_dropped()
                    log.debug("frame of %s dropped: %s", self.config.id, exc)
                    return
                # Lossless (and the end marker, always): send it again once NATS answers,
                # into the FRAMES it was meant for.
                await asyncio.sleep(self.settings.backoff_min_s)
                if self.channel is not None:
                    await self._frames_checked()
                sent.task = self._send(sent.frame)
        self._pending.popleft()
        if self.channel is not None:
            self.channel.published(ack.seq)
            frame = sent.frame
            media_time = frame.media_time.ToNanoseconds() / 1e9
            self._stored.append(_Stored(frame.seq, media_time, frame.capture_time, ack.seq))
            self._count_acknowledged()
        if sent.frame.end_of_stream:
            return  # not a frame: counts nothing, changes no state
        self._last_frame = time.monotonic()
        self.status.frame_published(sent.progress)
        if self.status.state != camera_pb2.CAMERA_STATE_ONLINE:
            await self.status.set_state(camera_pb2.CAMERA_STATE_ONLINE, "")

    async def _wait_turn(self, channel: PacedChannel, room: int) -> None:
        """Wait until ``room`` more frames may be in flight (the frames sent whose PubAck
        is not settled yet count as in flight)."""
        if channel.ready(reserved=len(self._pending) + room - 1):
            return  # the common case at full speed: no task, no timer per batch
        # Waiting anyway: settle the PubAcks first, so the status counts those frames as
        # published and the channel follows their acks, while the analyzers catch up.
        await self._settle_all()
        await self._paced(channel, channel.wait_turn(reserved=room - 1))

    async def _paced(self, channel: PacedChannel, waiting: Coroutine[Any, Any, None]) -> None:
        """Wait on the channel (for a turn, or for every ack), saying so in the status while no
        analyzer reads the camera, and checking FRAMES whenever no ack came for a while: the
        acks a lost FRAMES owed never come (its consumers start again from sequence 1)."""
        turn = asyncio.ensure_future(waiting)
        try:
            while not turn.done():
                await asyncio.wait({turn}, timeout=self.settings.pacing_resync_s)
                if channel.waiting_for_consumers:
                    self._last_frame = time.monotonic()
                    await self.status.set_state(
                        camera_pb2.CAMERA_STATE_STARTING, WAITING_FOR_ANALYZERS.format(subject=self.subject)
                    )
                if not turn.done():  # a stall: the acks FRAMES owes may be lost with it
                    await self._frames_checked(again=True)
            turn.result()
        finally:
            if not turn.done():
                turn.cancel()
            # Retrieve how it ends even after the cancel: stop() closing the channel can end it
            # with ChannelClosedError first, which asyncio would log at garbage collection.
            turn.add_done_callback(_retrieve)

    async def _report_loop(self) -> None:
        """Refresh the status record (fps, counters) and run the watchdog of live sources."""
        while True:
            await asyncio.sleep(min(self.settings.status_interval_s, self.settings.watchdog_s / 2))
            silent = time.monotonic() - self._last_frame
            online = self.status.state == camera_pb2.CAMERA_STATE_ONLINE
            if self.kind in LIVE and online and silent > self.settings.watchdog_s:
                self._reconnect.set()
                await self.status.set_state(
                    camera_pb2.CAMERA_STATE_OFFLINE,
                    f"no frame for {silent:.0f}s (watchdog {self.settings.watchdog_s:g}s); reconnecting",
                )
            await self.status.write()

    def _put(self, item: object) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed under us
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    # -- thread side -----------------------------------------------------

    def _decode(self) -> None:
        stage: ThreadStage[object] | None = None
        if self.lossless and self.settings.encode_thread:
            stage = ThreadStage(self._deliver, ENCODE_QUEUE, self._stop, name=f"encoder-{self.config.id}")
            self._pass_on = stage.put
        failure: _State | None = None
        try:
            self._decode_until_done()
        except Exception as exc:  # never let a camera thread die silently
            log.exception("camera %s decode thread failed", self.config.id)
            failure = _failure(exc)
        finally:
            if stage is not None:
                try:
                    stage.close()  # what it holds goes out before the failure and the end
                except StageFailed as exc:
                    failure = failure or _failure(exc)
            if failure is not None:
                self._deliver(failure)
            self._deliver(_DONE)

    def _decode_until_done(self) -> None:
        attempt = 0
        ever_online = False
        while not self._stop.is_set():
            self._reconnect.clear()
            try:
                source = open_nvdec(
                    self.config.source, self.config.decode, self._decode_fallback
                ) or open_source(
                    self.config.source,
                    image_fps=self.config.image_fps,
                    open_timeout_s=self.settings.open_timeout_s,
                    read_timeout_s=self.settings.watchdog_s,
                    decode_threads=self.settings.decode_threads,
                    plugins=self.sources.source,
                )
            except SourceError as exc:
                if exc.permanent:
                    self._pass_on(_State(camera_pb2.CAMERA_STATE_ERROR, str(exc)))
                    return
                state = camera_pb2.CAMERA_STATE_OFFLINE if ever_online else camera_pb2.CAMERA_STATE_ERROR
                self._pass_on(_State(state, f"{exc}; retrying"))
            else:
                try:
                    outcome = self._read(source, self._resume_in(source))
                finally:
                    source.close()
                if outcome == "finished":
                    return
                if outcome == "online":
                    ever_online, attempt = True, 0
            self._backoff.wait(attempt, self._stop)
            attempt += 1

    def _warn_short(self, source: Source) -> None:
        """A looped file that stops short of its own length: said once, then its pictures
        loop as they are (a simulated live camera has no end to report an error at)."""
        if not self._short_warned and (short := _shortfall(source)) is not None:
            log.warning(
                "camera %s: %s: %s; looping the part that can be read", self.config.id, self._shown, short
            )
            self._short_warned = True

    def _decode_fallback(self, reason: str) -> None:
        """NVDEC cannot decode this camera here: say so once for ``nvdec`` (``auto`` expects it)."""
        if self.config.decode is VideoDecode.NVDEC and not self._fallback_warned:
            log.warning("camera %s asks for NVDEC but %s: decoding on the CPU", self.config.id, reason)
            self._fallback_warned = True
        else:
            log.debug("camera %s decodes on the CPU: %s", self.config.id, reason)

    def _resume_in(self, source: Source) -> float | None:
        """Seek a file taken over mid-way to its last published picture (the first open only);
        returns that picture's media time, after which reading goes on."""
        resume, self._resume = self._resume, None
        if resume is None or resume.seq == 0:
            return None
        source.seek(resume.media_time)
        return resume.media_time

    def _read(self, source: Source, after: float | None = None) -> str:
        """Read until the source ends, fails or must reconnect; skip pictures up to ``after``.

        Returns "finished" (no reconnect wanted), "online" (frames flowed, then
        the stream dropped) or "failed" (dropped before any frame).
        """
        sampler = FpsSampler(self.config.fps)
        take: Callable[[float], bool] = sampler.take
        if after is not None:
            sampler.take(after)  # sampling goes on in the phase of the last published picture
            take = lambda t: t > after + 1e-4 and sampler.take(t)  # noqa: E731
        realtime = not self.lossless and source.kind not in LIVE
        anchor: float | None = None  # wall clock of media time 0 (real-time files)
        frames = 0
        last_media_time = after or 0.0
        while not self._stop.is_set():
            if self._reconnect.is_set():
                return "online" if frames else "failed"
            try:
                grabbed = source.grab(take)
            except EndOfSource:
                if frames == 0 and after is None and source.kind is SourceKind.FILE:
                    self._pass_on(
                        _State(camera_pb2.CAMERA_STATE_ERROR, f"{self._shown}: no decodable video frame")
                    )
                    return "finished"
                if self.config.loop:
                    self._warn_short(source)
                    source.close()
                    source.open()
                    sampler.reset()
                    take, anchor = sampler.take, None
                    continue
                self._pass_on(_End(last_media_time))
                # A file read to its end, or to where it stops short of its own length: every
                # picture there was is analysed either way, but a short one is an error.
                short = _shortfall(source)
                if short is None:
                    self._pass_on(_State(camera_pb2.CAMERA_STATE_ENDED, "", end=True))
                else:
                    self._pass_on(_State(camera_pb2.CAMERA_STATE_ERROR, f"{self._shown}: {short}", end=True))
                return "finished"
            except SourceError as exc:
                self._pass_on(_State(camera_pb2.CAMERA_STATE_OFFLINE, f"{exc}; reconnecting"))
                return "online" if frames else "failed"
            except cv2.error:
                self._pass_on(_CORRUPT)
                continue
            if grabbed is None:
                continue
            if grabbed.image is None:
                self._pass_on(_CORRUPT)
                continue
            frames += 1
            if realtime:
                if anchor is None:
                    anchor = time.monotonic() - grabbed.media_time
                self._stop.wait(max(0.0, anchor + grabbed.media_time - time.monotonic()))
            last_media_time = grabbed.media_time
            read = now_ts()
            if source.kind is SourceKind.FILE and self._origin is None:
                self._origin = self._media_origin(read, grabbed.media_time)
            self._pass_on(_Picture(grabbed.media_time, read, source.progress(), grabbed.image))
        return "finished"

    def _media_origin(self, read: Timestamp, media_time: float) -> Timestamp:
        """Wall-clock time of a file's media time 0: the camera's start_time, else the
        container's creation time, else when this picture was read minus its media time."""
        when = self.config.start_time or recording_start(classify(self.config.source)[1])
        origin = Timestamp()
        if when is not None:
            origin.FromDatetime(when)
        else:
            origin.FromNanoseconds(read.ToNanoseconds() - round(media_time * 1e9))
        return origin

    def _deliver(self, item: object) -> None:
        """Encode a picture and add it to the batch, count a corrupt frame, or queue a state
        change or the end after the batch (on the decode thread, or the encode stage's).

        Pictures on the GPU wait until a publish batch of them is there, for one nvJPEG call.
        """
        if isinstance(item, _Picture):
            self._pictures.append(item)
            if len(self._pictures) >= self._batch_size or not self._encoder.batches(item.image):
                self._encode_pictures()
        elif item is _CORRUPT:
            self.status.frame_corrupt()
        else:
            self._encode_pictures()
            self._flush()
            self._put(item)

    def _encode_pictures(self) -> None:
        """Encode the pictures waiting, together, and add them to the batch in order."""
        pictures, self._pictures = self._pictures, []
        for picture, encoded in zip(pictures, self._encoder.encode([p.image for p in pictures]), strict=True):
            if encoded is None:
                self.status.frame_corrupt()
            else:
                self._hand_over(_Frame(picture.media_time, picture.capture_time, picture.progress, encoded))

    def _hand_over(self, frame: _Frame) -> None:
        """Add a frame to the batch, and hand the batch over once it is full."""
        self._batch.append(frame)
        if len(self._batch) >= self._batch_size:
            self._flush()

    def _flush(self) -> None:
        """Queue the batch for the publisher: wait for space (lossless) or drop it (real time)."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        if self.lossless:
            while not self._slots.acquire(timeout=0.5):
                if self._stop.is_set():
                    return
        elif not self._slots.acquire(blocking=False):
            for _ in batch:
                self.status.frame_dropped()
            return
        if self._stop.is_set():
            return
        self._put(batch)

    @property
    def _shown(self) -> str:
        return self.config.redacted_source


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a finished future's exception as seen (the caller no longer wants the outcome)."""
    if not future.cancelled():
        future.exception()


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def _shortfall(source: Source) -> str | None:
    """How far short of its declared length a source that just ended stopped, if it knows."""
    return source.shortfall() if isinstance(source, Measured) else None
