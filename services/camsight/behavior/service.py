"""The behavior service: DETECTIONS in, EVENTS and snapshots out.

One replica owns the cameras :mod:`camsight.behavior.partition` gives it and
consumes their results through its own durable consumer. Camera configs
(zones, lines, rules) come from the ``cameras`` KV bucket and are applied
live through a watch. A result is acknowledged only after the events it
produced were published (and their snapshots stored); a result held in a
reorder buffer is acknowledged once it left it and was processed, so a crash
loses nothing (it is redelivered after ``ack_wait_s``).

Each camera's state is checkpointed in the ``behavior_state`` bucket (decision
0048) every ``checkpoint_interval_s`` while its results come in, when its
config changed and when the service stops; always after the events it
produced were published. Whoever owns the camera next (this replica
restarted, or another after a rolling upgrade or a change of ``replicas``)
restores it and starts its consumer again right after the oldest result a
restored camera lacks: the results since that
checkpoint are processed again, in stream order, and produce the same events
with the same ids and revisions, which ``Nats-Msg-Id`` drops; results already
in a camera's state are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import time
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from prometheus_client import Counter
from pydantic import ValidationError

from camsight.behavior import checkpoint, partition
from camsight.behavior.engine import Engine, Stats
from camsight.behavior.events import ENDED, Emission
from camsight.behavior.framepace import FrameFollower
from camsight.behavior.rules import checked_registry
from camsight.behavior.settings import BehaviorSettings
from camsight.behavior.snapshots import SnapshotStore, Stored
from camsight.bus import MalformedMessageError, PullWorker, WorkerConfig, each, subjects
from camsight.bus.worker import HELD, TRANSIENT_ERRORS, Held, ack_held, apply_consumer
from camsight.cameras import CameraConfig
from camsight.config import service_section
from camsight.retry import Backoff, retry_async
from camsight.runtime import Service, ServiceContext
from camsight.v1 import analysis_pb2, camera_pb2

log = logging.getLogger(__name__)

STATS = Counter("camsight_behavior_results", "AnalysisResults by what became of them", ["outcome"])
EVENTS = Counter("camsight_behavior_events_published", "Event messages published")
CHECKPOINTS = Counter("camsight_behavior_checkpoints", "Camera state checkpoints stored")
PUBLISH_BACKOFF = Backoff(initial=0.1, maximum=5.0)
SHUTDOWN_SAVE_S = 10.0
"""How long a stopping replica spends on its checkpoints: well inside the chart's 45 s grace
period, after the batch in hand was drained."""


class BehaviorService(Service):
    name = "behavior"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.config = service_section(ctx.settings, "behavior", BehaviorSettings)
        s = ctx.settings  # the configured cameras' rules are checked at start-up (exit 2)
        self.engine = Engine(self.config, checked_registry(s.disabled_plugins, s.cameras, self.config))
        self._exported = Stats()
        self._lock = asyncio.Lock()
        self._cameras: dict[str, CameraConfig] = {}
        self._owned: frozenset[str] = frozenset()
        self._ownership_changed = asyncio.Event()
        self._watcher: KeyValue.KeyWatcher | None = None
        self._snapshots: SnapshotStore | None = None
        self._snapshot_of: dict[str, Stored] = {}
        # (camera, analyzer) -> seq -> message of a result the engine holds, unacked.
        self._held: dict[tuple[str, str], dict[int, Msg]] = {}
        self._states: KeyValue | None = None
        # camera -> DETECTIONS sequence of the last result its engine state reflects.
        self._position: dict[str, int] = {}
        self._saved: dict[str, float] = {}  # camera -> monotonic time of its last checkpoint
        self._saved_position: dict[str, int] = {}  # camera -> position in its last checkpoint
        self._start_seq: int | None = None  # where this process's consumer starts, once chosen
        self._follower: FrameFollower | None = None  # pacing lossless cameras (decision 0079)
        self._last_result = -math.inf  # monotonic time the last result came in

    async def start(self) -> None:
        self._snapshots = SnapshotStore(self.ctx.bus, self.config.snapshot_cache)
        c = self.config
        if c.follow_frames:
            self._follower = FrameFollower(self.ctx.bus, c.frames_inactive_s)
        self._states = await self.ctx.bus.kv(subjects.BEHAVIOR_STATE_BUCKET)
        kv = await self.ctx.bus.kv(subjects.CAMERAS_BUCKET)
        self._watcher = await kv.watchall()
        async for entry in self._watcher:  # the registry as it is now, up to the None marker
            if entry is None:
                break
            await self._apply(entry)
        self.set_ready(True)

    async def run(self) -> None:
        background = [asyncio.create_task(self._watch()), asyncio.create_task(self._flush_stale())]
        stopping = asyncio.create_task(self.ctx.stopping.wait())
        try:
            while not self.ctx.stopping.is_set():
                self._ownership_changed.clear()
                changed = asyncio.create_task(self._ownership_changed.wait())
                worker, task = await self._start_worker()
                waits: set[asyncio.Task[Any]] = {stopping, changed, *background} | ({task} if task else set())
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                if worker is not None and task is not None:
                    await worker.stop()
                    await task  # drained: the batch in hand is finished and acked
                for t in background:
                    if t.done():
                        t.result()  # a failed background task fails the service
        finally:
            stopping.cancel()
            for t in background:
                t.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if self._follower is not None:
                await self._follower.close()
            async with self._lock:
                # Nothing is ended here: the next owner of each camera goes on from this
                # checkpoint (results held for reordering are in it and come again unacked).
                await self._save_all(sorted(self.engine.cameras))

    async def close(self) -> None:
        if self._follower is not None:
            await self._follower.close()
        if self._watcher is not None:
            with contextlib.suppress(Exception):  # the connection may already be closed
                await self._watcher.stop()

    # -- cameras ---------------------------------------------------------------

    async def _watch(self) -> None:
        assert self._watcher is not None
        async for entry in self._watcher:
            if entry is not None:
                await self._apply(entry)

    async def _apply(self, entry: KeyValue.Entry) -> None:
        """One registry change: a camera added, updated or deleted.

        Ownership is a function of the camera id alone, so a change to one
        camera never moves another.
        """
        old = self._cameras.pop(entry.key, None)
        config: CameraConfig | None = None
        if entry.operation not in ("DEL", "PURGE") and entry.value:
            try:
                config = CameraConfig.from_proto(camera_pb2.Camera.FromString(entry.value))
            except (ValidationError, ValueError, DecodeError) as exc:
                log.error(
                    "camera %s in the registry is invalid, keeping its previous config: %s", entry.key, exc
                )
                if old is not None:
                    self._cameras[entry.key] = old
                return
            self._cameras[entry.key] = config
        mine = (
            config is not None
            and partition.owner(config.id, self.config.replicas) == self.config.replica_index
        )
        if mine and config is not None and self._follower is not None:
            if config.lossless:
                self._follower.follow(config.id)  # first: the decoder may start the camera meanwhile
            else:
                await self._follower.unfollow(config.id)  # nothing holds a live camera back
        async with self._lock:
            emissions: list[Emission] = []
            # A camera of this replica that left the registry (another replica's camera is
            # none of its business, nor is that camera's checkpoint).
            gone = None
            if old is not None and old.id in self.engine.cameras and old.id != (config and config.id):
                gone = old.id
            if gone is not None:
                emissions.extend(self.engine.remove_camera(gone))
            if mine and config is not None:
                if config.id in self.engine.cameras:
                    emissions.extend(self.engine.set_camera(config))
                else:
                    emissions.extend(await self._take_over(config))
            await self._publish(emissions)
            await self._ack_released()
            if gone is not None:
                await self._forget(gone)
                if self._follower is not None:
                    await self._follower.unfollow(gone)
            if mine and config is not None:
                await self._save(config.id)
        owned = frozenset(self.engine.cameras)
        if owned != self._owned:
            log.info("owning %d cameras", len(owned), extra={"cameras": sorted(owned)})
            self._owned = owned
            self._ownership_changed.set()

    # -- checkpoints -----------------------------------------------------------

    async def _take_over(self, config: CameraConfig) -> list[Emission]:
        """A camera new to this replica: restored from its checkpoint when it has a usable one."""
        assert self._states is not None
        try:
            entry = await self._states.get(config.id)
        except NotFoundError:  # no key, or a deleted one
            entry = None
        if entry is not None and entry.value:
            try:
                saved = checkpoint.load(entry.value, self.config, self.engine.registry.plugin_packages())
                stream = await self.ctx.bus.js.stream_info(subjects.DETECTIONS_STREAM)
                if saved.position > stream.state.last_seq:
                    raise checkpoint.CheckpointError(
                        f"checkpoint is at DETECTIONS sequence {saved.position}, beyond the stream's "
                        f"last ({stream.state.last_seq}): the stream was recreated since",
                        stale=saved,
                    )
            except checkpoint.CheckpointError as exc:
                log.warning("camera %s starts with no state: %s", config.id, exc)
                if exc.stale is not None:  # its open events end, at its last frame
                    ended = self.engine.restore(config, exc.stale.engine, time.monotonic())
                    ended += self.engine.remove_camera(config.id, f"behavior's state was reset: {exc}")
                    return ended + self.engine.set_camera(config)
            else:
                self._position[config.id] = saved.position
                log.info(
                    "camera %s restored from its checkpoint at DETECTIONS sequence %d",
                    config.id,
                    saved.position,
                )
                assert self._snapshots is not None
                self._snapshots.restore_private(config.id, saved.private)
                return self.engine.restore(config, saved.engine, time.monotonic())
        return self.engine.set_camera(config)

    async def _save_due(self, cameras: Iterable[str]) -> None:
        """Checkpoint those of ``cameras`` whose state moved on since their last checkpoint,
        if that was ``checkpoint_interval_s`` ago."""
        now = time.monotonic()
        for camera_id in cameras:
            moved = self._position.get(camera_id, 0) != self._saved_position.get(camera_id)
            if moved and now - self._saved.get(camera_id, -math.inf) >= self.config.checkpoint_interval_s:
                await self._save(camera_id)

    async def _save_all(self, cameras: list[str]) -> None:
        """Checkpoint every camera at shutdown: all at once, within ``SHUTDOWN_SAVE_S``, and
        not at all without a connection. One at a time, each waiting out its own timeout,
        15 cameras took 24 s with NATS just back and 75 s with it down: past a pod's grace
        period, and a replacement started meanwhile found the port still taken. A
        checkpoint not stored costs a longer replay for the next owner, never an event."""
        if not self.ctx.bus.connected:
            log.warning(
                "not checkpointing %d cameras at shutdown: not connected to NATS "
                "(the next owner goes on from their last checkpoints)",
                len(cameras),
            )
            return
        try:
            async with asyncio.timeout(SHUTDOWN_SAVE_S):
                await asyncio.gather(*(self._save(camera_id) for camera_id in cameras))
        except TimeoutError:
            log.warning(
                "checkpoints at shutdown not all stored within %.0fs "
                "(the next owner goes on from the last ones stored)",
                SHUTDOWN_SAVE_S,
            )

    async def _save(self, camera_id: str) -> None:
        """Checkpoint one camera; not before its position in DETECTIONS is known (until its
        first result or this process's first consumer start, its state is a new one's)."""
        assert self._states is not None
        camera = self.engine.cameras.get(camera_id)
        position = self._position.get(camera_id)
        if camera is None or position is None:
            return
        assert self._snapshots is not None
        saved = checkpoint.Checkpoint(position, camera.state(), self._snapshots.private_of(camera_id))
        data = checkpoint.dump(saved, self.config)
        try:
            await self._states.put(camera_id, data)
        except TRANSIENT_ERRORS as exc:  # the previous checkpoint stands: a longer replay, no loss
            log.warning("checkpoint of camera %s not stored: %s", camera_id, exc)
            return
        CHECKPOINTS.inc()
        self._saved[camera_id] = time.monotonic()
        self._saved_position[camera_id] = position

    async def _forget(self, camera_id: str) -> None:
        """The camera left the registry: its open events were ended, its checkpoint goes too."""
        assert self._states is not None
        for known in (self._position, self._saved, self._saved_position):
            known.pop(camera_id, None)
        with contextlib.suppress(NotFoundError):
            await self._states.delete(camera_id)

    async def _first_sequence(self, durable: str) -> int:
        """Where this process's consumer starts: right after the oldest result an owned
        camera's state lacks, the durable recreated there (a consumer's start cannot change
        in place).

        A restored camera lacks what came after its checkpoint; the others (no checkpoint,
        or one refused) lack nothing the consumer had acknowledged. Starting there, the
        results since a checkpoint come again in stream order, before anything newer: the
        consumer's own redelivery would send them after ``ack_wait_s``, behind newer results
        the reorder buffer would then have skipped past.
        """
        js, owned = self.ctx.bus.js, self._owned  # as it is now: a watch may change it meanwhile
        try:
            info = await js.consumer_info(subjects.DETECTIONS_STREAM, durable)
            floor = info.ack_floor.stream_seq or 0 if info.ack_floor else 0
            await js.delete_consumer(subjects.DETECTIONS_STREAM, durable)
        except NotFoundError:
            floor = 0
        return min(self._position.setdefault(camera_id, floor) for camera_id in owned) + 1

    # -- detections ------------------------------------------------------------

    async def _start_worker(self) -> tuple[PullWorker | None, asyncio.Task[None] | None]:
        if not self._owned:
            return None, None
        durable = partition.durable(self.config.replica_index)
        if self._start_seq is None:
            self._start_seq = await self._first_sequence(durable)
        config = WorkerConfig(
            stream=subjects.DETECTIONS_STREAM,
            durable=durable,
            filter_subjects=partition.filter_subjects(self._owned),
            batch=self.config.batch,
            ack_wait=self.config.ack_wait_s,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self._start_seq,
            description=f"behavior replica {self.config.replica_index} of {self.config.replicas}",
        )
        await apply_consumer(self.ctx.bus, config)
        worker = PullWorker(self.ctx.bus, config, each(self._handle))
        return worker, asyncio.create_task(worker.run())

    async def _handle(self, msg: Msg) -> Held | None:
        result = analysis_pb2.AnalysisResult.FromString(msg.data)
        check_result(result, msg.subject)
        try:
            return await self._process(msg, result, msg.metadata.sequence.stream)
        finally:
            self._last_result = time.monotonic()

    async def _process(self, msg: Msg, result: analysis_pb2.AnalysisResult, position: int) -> Held | None:
        """A checked result at DETECTIONS sequence ``position``: into the engine, out as events."""
        stream, seq = (result.frame.camera_id, result.analyzer), result.frame.seq
        camera = result.frame.camera_id
        async with self._lock:
            if position <= self._position.get(camera, 0):
                await self._got_past(result)
                return None  # already in the camera's state (restored from a checkpoint)
            if self._snapshots is not None:
                self._snapshots.note(result)  # before the engine: its snapshots may need these boxes
            emissions = self.engine.push(result, time.monotonic())
            await self._publish(emissions)
            await self._ack_released(stream)
            if camera in self.engine.cameras:
                self._position[camera] = position
            await self._save_due([camera])
            if self.engine.holds(*stream, seq):
                self._held.setdefault(stream, {})[seq] = msg
                return HELD
            await self._got_past(result)
        return None

    async def _got_past(self, result: analysis_pb2.AnalysisResult) -> None:
        """The result's frame is no longer needed for a snapshot, nor are the camera's earlier ones."""
        if self._follower is not None and result.frame.stream == subjects.FRAMES_STREAM:
            await self._follower.done(result.frame.camera_id, result.frame.stream_sequence)

    async def _ack_released(self, stream: tuple[str, str] | None = None) -> None:
        """Ack the held results of ``stream`` (or all) that the engine has processed or dropped.

        Called after the emissions they produced were published.
        """
        for key in [stream] if stream else list(self._held):
            held = self._held.get(key, {})
            for seq in [s for s in held if not self.engine.holds(*key, s)]:
                await ack_held(held.pop(seq), partition.durable(self.config.replica_index))
            if not held:
                self._held.pop(key, None)

    async def _flush_stale(self) -> None:
        """Skip reorder gaps that waited longer than ``reorder_timeout_s`` of wall time, and
        checkpoint cameras whose last results came in after their last checkpoint."""
        timeout = self.config.reorder_timeout_s
        while True:
            await asyncio.sleep(timeout / 2)
            async with self._lock:
                emissions = self.engine.flush(older_than=time.monotonic() - timeout)
                await self._publish(emissions)
                await self._ack_released()
                await self._save_due(sorted(self.engine.cameras))
                idle = not self._held and time.monotonic() - self._last_result >= timeout
                if idle and self._follower is not None:
                    await self._follower.release_all()  # no result is coming for what it holds

    # -- events ----------------------------------------------------------------

    async def _publish(self, emissions: list[Emission]) -> None:
        self._export_stats()
        for emission in emissions:
            event = emission.event
            if emission.snapshot is not None:
                stored = await self._snapshot(emission)
                if stored:
                    self._snapshot_of[emission.snapshot.event_id] = stored
            if event is None:
                continue
            stored = self._snapshot_of.get(event.id)
            event.snapshot_id = stored.name if stored else ""
            event.explain_snapshot_id = stored.explanation if stored else ""
            if event.state == ENDED:
                self._snapshot_of.pop(event.id, None)
            await self._publish_event(emission)

    async def _snapshot(self, emission: Emission) -> Stored | None:
        assert self._snapshots is not None and emission.snapshot is not None
        try:
            return await self._snapshots.keep(emission.snapshot)
        except TRANSIENT_ERRORS as exc:
            log.warning("snapshot not stored: %s", exc)
            return None

    async def _publish_event(self, emission: Emission) -> None:
        """Publish, retrying transient failures until the service stops: the engine already
        moved on, so giving up would lose the event (a redelivered result is a duplicate to it)."""
        event = emission.event
        assert event is not None

        def failed(exc: BaseException, delay: float) -> None:
            log.warning("publishing event %s failed (%s); retrying in %.1fs", event.id, exc, delay)

        await retry_async(
            lambda: self.ctx.bus.publish_event(event, msg_id=emission.msg_id),
            on=TRANSIENT_ERRORS,
            backoff=PUBLISH_BACKOFF,
            stopping=self.ctx.stopping,
            on_retry=failed,
        )
        EVENTS.inc()

    def _export_stats(self) -> None:
        # Runs for every result: vars() and a shallow copy, not asdict() (it deep-copies).
        now, before = vars(self.engine.stats), vars(self._exported)
        for outcome, value in now.items():
            if value > before[outcome]:
                STATS.labels(outcome).inc(value - before[outcome])
        self._exported = copy.copy(self.engine.stats)


def check_result(result: analysis_pb2.AnalysisResult, subject: str) -> None:
    """Refuse a result the engine must never see: raises MalformedMessageError (dead-lettered).

    Checked before the result enters the reorder buffer, so a bad one can
    neither misroute to another camera nor fail later inside the tracker
    (non-finite boxes made supervision raise mid-push).
    """
    try:
        expected = subjects.detections(result.analyzer, result.frame.camera_id)
    except ValueError as exc:
        raise MalformedMessageError(f"result names no valid analyzer and camera: {exc}") from None
    if subject != expected:
        raise MalformedMessageError(f"result for camera {result.frame.camera_id!r} published on {subject!r}")
    if result.frame.seq < 1:
        raise MalformedMessageError("result has no frame seq (FrameRef.seq must be >= 1)")
    for n, det in enumerate(result.detections):
        box = det.box
        if not all(map(math.isfinite, (det.score, box.x1, box.y1, box.x2, box.y2))):
            raise MalformedMessageError(f"detection {n} has a non-finite score or box coordinate")
