"""The behavior service: DETECTIONS in, EVENTS and snapshots out.

One replica owns the cameras :mod:`camsight.behavior.partition` gives it and
consumes their results through its own durable consumer. Camera configs
(zones, lines, rules) come from the ``cameras`` KV bucket and are applied
live through a watch. A result is acknowledged only after the events it
produced were published (and their snapshots stored); a result held in a
reorder buffer is acknowledged once it left it and was processed, so a crash
loses nothing (it is redelivered after ``ack_wait_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import time
from typing import Any

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js.kv import KeyValue
from prometheus_client import Counter
from pydantic import ValidationError

from camsight.behavior import partition
from camsight.behavior.engine import Engine, Stats
from camsight.behavior.events import ENDED, Emission
from camsight.behavior.rules import checked_registry
from camsight.behavior.settings import BehaviorSettings
from camsight.behavior.snapshots import SnapshotStore
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
PUBLISH_BACKOFF = Backoff(initial=0.1, maximum=5.0)


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
        self._snapshot_of: dict[str, str] = {}
        # (camera, analyzer) -> seq -> message of a result the engine holds, unacked.
        self._held: dict[tuple[str, str], dict[int, Msg]] = {}

    async def start(self) -> None:
        self._snapshots = SnapshotStore(self.ctx.bus, self.config.snapshot_cache)
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
            async with self._lock:
                # Process the results held for reordering, then end every open event:
                # the next owner of a camera starts with no state.
                emissions = self.engine.flush()
                for camera_id in list(self.engine.cameras):
                    emissions.extend(self.engine.remove_camera(camera_id))
                await self._publish(emissions)
                await self._ack_released()

    async def close(self) -> None:
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
        async with self._lock:
            emissions: list[Emission] = []
            if old is not None and (not mine or old.id != (config.id if config else None)):
                emissions.extend(self.engine.remove_camera(old.id))
            if mine and config is not None:
                emissions.extend(self.engine.set_camera(config))
            await self._publish(emissions)
            await self._ack_released()
        owned = frozenset(self.engine.cameras)
        if owned != self._owned:
            log.info("owning %d cameras", len(owned), extra={"cameras": sorted(owned)})
            self._owned = owned
            self._ownership_changed.set()

    # -- detections ------------------------------------------------------------

    async def _start_worker(self) -> tuple[PullWorker | None, asyncio.Task[None] | None]:
        if not self._owned:
            return None, None
        config = WorkerConfig(
            stream=subjects.DETECTIONS_STREAM,
            durable=partition.durable(self.config.replica_index),
            filter_subjects=partition.filter_subjects(self._owned),
            batch=self.config.batch,
            ack_wait=self.config.ack_wait_s,
            description=f"behavior replica {self.config.replica_index} of {self.config.replicas}",
        )
        await apply_consumer(self.ctx.bus, config)
        worker = PullWorker(self.ctx.bus, config, each(self._handle))
        return worker, asyncio.create_task(worker.run())

    async def _handle(self, msg: Msg) -> Held | None:
        result = analysis_pb2.AnalysisResult.FromString(msg.data)
        check_result(result, msg.subject)
        stream, seq = (result.frame.camera_id, result.analyzer), result.frame.seq
        async with self._lock:
            if self._snapshots is not None:
                self._snapshots.note(result)  # before the engine: its snapshots may need these boxes
            await self._publish(self.engine.push(result, time.monotonic()))
            await self._ack_released(stream)
            if self.engine.holds(*stream, seq):
                self._held.setdefault(stream, {})[seq] = msg
                return HELD
        return None

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
        """Skip reorder gaps that waited longer than ``reorder_timeout_s`` of wall time."""
        timeout = self.config.reorder_timeout_s
        while True:
            await asyncio.sleep(timeout / 2)
            async with self._lock:
                await self._publish(self.engine.flush(older_than=time.monotonic() - timeout))
                await self._ack_released()

    # -- events ----------------------------------------------------------------

    async def _publish(self, emissions: list[Emission]) -> None:
        self._export_stats()
        for emission in emissions:
            event = emission.event
            if emission.snapshot is not None:
                name = await self._snapshot(emission)
                if name:
                    self._snapshot_of[emission.snapshot.event_id] = name
            if event is None:
                continue
            event.snapshot_id = self._snapshot_of.get(event.id, "")
            if event.state == ENDED:
                self._snapshot_of.pop(event.id, None)
            await self._publish_event(emission)

    async def _snapshot(self, emission: Emission) -> str | None:
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
            lambda: self.ctx.bus.publish_event(event),
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
