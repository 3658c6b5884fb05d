"""The decoder service: watch the camera registry, own a fair share of cameras, decode them.

* Registry: the ``cameras`` KV bucket (key = camera id, value =
  camsight.v1.Camera) is the source of truth. The service watches it and
  starts, restarts (changed config) and stops cameras live. Cameras of the
  config file are written into it at start.
* Ownership: every replica heartbeats in a TTL bucket; rendezvous hashing
  over the live replicas names each camera's preferred owner, and a replica
  decodes a camera only while it holds the camera's lease
  (:mod:`camsight.bus.leases`). A replica that dies loses its leases after
  ``lease_ttl_s``; the others take them on their next tick, so takeover
  happens within ``lease_ttl_s + renew_interval_s``.
* Rewinds: a file whose frames FRAMES lost (a nats-server restart: it is a
  memory stream) is decoded again after the last frame every analyzer
  acknowledged. The worker finds out and stops; the service keeps the point
  it stopped at and starts the camera again from there, now or whenever this
  replica owns it again (decision 0083).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import ValidationError

from camsight.bus import BUS_ERRORS, subjects
from camsight.bus.leases import LeaseTable, holder_id, rendezvous_owner
from camsight.bus.pacing import AckPacer
from camsight.cameras import CameraConfig
from camsight.config import ConfigError, service_section
from camsight.decoder.camera import CameraWorker
from camsight.decoder.plugins import checked_sources
from camsight.decoder.resume import Resume, already_ended, resume_point
from camsight.decoder.settings import DecoderSettings
from camsight.decoder.status import StatusReporter
from camsight.runtime import Service, ServiceContext
from camsight.stores.cameras import CameraOwnedError, Registry, ReservedLabelError
from camsight.v1 import camera_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvalidCamera:
    """A registry entry that does not validate: its owner reports the error."""

    camera_id: str
    error: str


Entry = CameraConfig | InvalidCamera


def parse_entry(key: str, value: bytes) -> Entry:
    """Validate a registry value; never raises."""
    try:
        config = CameraConfig.from_proto(camera_pb2.Camera.FromString(value))
    except DecodeError:
        return InvalidCamera(key, "registry value is not a camsight.v1.Camera")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "camera"
        return InvalidCamera(key, f"invalid camera: {where}: {first['msg']}")
    if config.id != key:
        return InvalidCamera(key, f"registry key {key!r} differs from camera id {config.id!r}")
    return config


class DecoderService(Service):
    name = "decoder"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.settings = service_section(ctx.settings, "decoder", DecoderSettings)
        if self.settings.pacing_window >= ctx.settings.streams.frames_per_camera:
            raise ConfigError(
                f"services.decoder.pacing_window ({self.settings.pacing_window}) must be less than "
                f"streams.frames_per_camera ({ctx.settings.streams.frames_per_camera})"
            )
        # The configured cameras' schemes are checked at start-up (exit 2); a camera added later
        # with a scheme no plugin reads goes to state error, naming it.
        self.sources = checked_sources(ctx.settings.disabled_plugins, ctx.settings.cameras)
        self.decoder_id = holder_id(ctx.settings.instance, uuid.uuid4().hex[:8])
        self.registry: dict[str, Entry] = {}
        self.revisions: dict[str, int] = {}  # camera -> revision of its registry entry
        self.workers: dict[str, CameraWorker | _Idle] = {}
        # What each owned camera was started with: a new revision, even of the same
        # value, restarts it (and replays an ended file).
        self._running: dict[str, tuple[Entry, int]] = {}
        # Where a lossless file stopped (revision, point), for when FRAMES lost its frames.
        self._rewinds: dict[str, tuple[int, Resume]] = {}
        self._leases: LeaseTable | None = None
        self._pacer: AckPacer | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._retired: list[CameraWorker | _Idle] = []  # stopped; threads may still be finishing
        self._wake = asyncio.Event()

    # -- life cycle -------------------------------------------------------

    async def start(self) -> None:
        bus = self.ctx.bus
        cameras = Registry(bus)
        registry = await cameras.kv()
        if self.settings.seed_cameras:
            await self._seed(cameras)
        self._leases = await LeaseTable.open(
            bus, self.settings.lease_bucket, self.decoder_id, self.settings.lease_ttl_s
        )
        self._pacer = AckPacer(bus, subjects.FRAMES_STREAM, self.settings.pacing_resync_s)
        await self._pacer.start()
        watcher = await registry.watchall()
        async for entry in watcher:  # the current registry, up to the "no more" marker
            if entry is None:
                break
            self._apply(entry)
        self._watch_task = asyncio.create_task(self._watch(watcher), name="decoder-registry")
        await self._leases.heartbeat()
        log.info("decoder %s started with %d cameras in the registry", self.decoder_id, len(self.registry))

    async def run(self) -> None:
        self.set_ready(True)
        while not self.ctx.stopping.is_set():
            try:
                await self._tick()
            except BUS_ERRORS as exc:
                log.warning("decoder tick failed: %s", exc)
                await self._stop_expired()
            self._wake.clear()
            stop = asyncio.ensure_future(self.ctx.stopping.wait())
            wake = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait(
                {stop, wake}, timeout=self.settings.renew_interval_s, return_when="FIRST_COMPLETED"
            )
            stop.cancel()
            wake.cancel()
        self.set_ready(False, "stopping")
        await self._shutdown()

    async def close(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        for camera in list(self.workers):
            await self._stop_camera(camera, report=None, release=False)
        for worker in self._retired:
            await worker.join()
        self._retired = []
        if self._pacer is not None:
            await self._pacer.close()

    async def _shutdown(self) -> None:
        """Stop every camera and hand its lease back so another replica takes it at once."""
        assert self._leases is not None
        for camera, worker in list(self.workers.items()):
            # An ended file stays "ended": the next owner must know it need not replay it.
            ended = worker.status.state == camera_pb2.CAMERA_STATE_ENDED
            report = None if ended else camera_pb2.CAMERA_STATE_STOPPED
            await self._stop_camera(camera, report=report, release=True)
        with contextlib.suppress(*BUS_ERRORS):
            await self._leases.leave()

    # -- registry ---------------------------------------------------------

    async def _seed(self, registry: Registry) -> None:
        """Write the config file's cameras into the registry (create or update); a camera
        id a Camera resource owns stays the resource's (the controller would put it back)."""
        for camera in self.ctx.settings.cameras:
            try:
                if await registry.put(camera.to_proto()):
                    log.info("camera %s written to the registry from the config file", camera.id)
            except (CameraOwnedError, ReservedLabelError) as exc:
                log.warning("config file camera %s not written: %s", camera.id, exc)

    async def _watch(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is not None:
                self._apply(entry)
                self._wake.set()

    def _apply(self, entry: KeyValue.Entry) -> None:
        if entry.operation in (KV_DEL, KV_PURGE):
            self.registry.pop(entry.key, None)
            self.revisions.pop(entry.key, None)
            log.info("camera %s removed from the registry", entry.key)
            return
        parsed = parse_entry(entry.key, entry.value or b"")
        if isinstance(parsed, InvalidCamera):
            log.warning("camera %s in the registry is invalid: %s", entry.key, parsed.error)
        self.registry[entry.key] = parsed
        self.revisions[entry.key] = entry.revision or 0

    # -- ownership --------------------------------------------------------

    def _active(self, entry: Entry) -> bool:
        return isinstance(entry, InvalidCamera) or entry.enabled

    async def _tick(self) -> None:
        """Heartbeat, renew, then make the running cameras match the registry and our share of it.

        Renewals come first so that stopping or starting cameras (which may
        take a moment) never lets a lease lapse.
        """
        assert self._leases is not None
        await self._leases.heartbeat()
        for camera in list(self.workers):
            if not await self._leases.renew(camera):
                await self._stop_camera(camera, report=None, release=False)
        members = await self._leases.members()
        if self.decoder_id not in members:
            members.append(self.decoder_id)
        mine = {
            camera
            for camera, entry in self.registry.items()
            if self._active(entry) and rendezvous_owner(camera, members) == self.decoder_id
        }
        for camera in list(self.workers):
            entry = self.registry.get(camera)
            if entry is None:
                await self._stop_camera(camera, report=None, release=True, forget_status=True)
            elif not self._active(entry):
                await self._stop_camera(camera, report=camera_pb2.CAMERA_STATE_STOPPED, release=True)
            elif camera not in mine:
                log.info("camera %s moves to another decoder replica", camera)
                await self._stop_camera(camera, report=None, release=True)
            elif self._running.get(camera) != (entry, self.revisions.get(camera, 0)):
                log.info("camera %s was written in the registry; restarting it", camera)
                await self._stop_camera(camera, report=None, release=False)
                await self._start_camera(camera, entry)
            elif self.workers[camera].halted:
                await self._stop_camera(camera, report=None, release=False)
                await self._start_camera(camera, entry)
        for camera in sorted(mine - set(self.workers)):
            if await self._leases.claim(camera):
                await self._start_camera(camera, self.registry[camera])

    async def _stop_expired(self) -> None:
        """Without the bus a lease cannot be renewed: stop what may already be another replica's."""
        assert self._leases is not None
        for camera in list(self.workers):
            if not self._leases.valid(camera):
                log.warning("lease of camera %s expired without renewal; stopping it", camera)
                await self._stop_camera(camera, report=None, release=False)

    async def _start_camera(self, camera: str, entry: Entry) -> None:
        assert self._pacer is not None
        revision = self.revisions.get(camera, 0)
        rewind_revision, rewind = self._rewinds.pop(camera, (0, None))
        status = StatusReporter(self.ctx.bus, camera, self.decoder_id, revision)
        self._running[camera] = (entry, revision)
        record = await status.read()
        if already_ended(record, status):
            log.info(
                "camera %s already ended at this revision of its registry entry; not decoded again "
                "(write the entry again to replay it)",
                camera,
                extra={"camera": camera},
            )
            self.workers[camera] = _Idle(status)
            return
        if isinstance(entry, InvalidCamera):
            worker = None
            await status.set_state(camera_pb2.CAMERA_STATE_ERROR, entry.error)
        else:
            leases = self._leases
            assert leases is not None
            worker = CameraWorker(
                self.ctx.bus,
                entry,
                self.settings,
                status,
                self._pacer,
                lambda: leases.valid(camera),
                resume=await resume_point(
                    self.ctx.bus, entry, status, record, rewind if rewind_revision == revision else None
                ),
                sources=self.sources,
                on_rewind=self._wake.set,
            )
            log.info("decoding camera %s from %s", camera, entry.redacted_source, extra={"camera": camera})
            await worker.start()
        self.workers[camera] = worker or _Idle(status)

    async def _stop_camera(
        self,
        camera: str,
        *,
        report: camera_pb2.CameraState.ValueType | None,
        release: bool,
        forget_status: bool = False,
    ) -> None:
        worker = self.workers.pop(camera)
        revision = self._running.pop(camera, (None, 0))[1]
        # Before the stop, which settles what was in flight: those frames may be sent again.
        rewind = worker.rewind_point()
        if rewind is not None and not forget_status and worker.status.state != camera_pb2.CAMERA_STATE_ENDED:
            self._rewinds[camera] = (revision, rewind)
        else:
            self._rewinds.pop(camera, None)
        await worker.stop()
        self._retired = [w for w in self._retired if not w.finished] + [worker]
        if report is not None:
            await worker.status.set_state(report, "")
        worker.status.forget_metrics()
        if forget_status:
            with contextlib.suppress(*BUS_ERRORS):
                await (await self.ctx.bus.kv(subjects.CAMERA_STATUS_BUCKET)).delete(camera)
        if release and self._leases is not None:
            await self._leases.release(camera)

    def owned(self) -> set[str]:
        """Cameras this replica may publish now: running (or in error / ended) with a valid lease."""
        leases = self._leases
        return {c for c in self.workers if leases is not None and leases.valid(c)}


class _Idle:
    """Stands in for a worker of an invalid camera: holds its status, decodes nothing."""

    def __init__(self, status: StatusReporter) -> None:
        self.status = status

    finished = True
    halted = False

    def rewind_point(self) -> Resume | None:
        return None

    async def stop(self) -> None:
        return None

    async def join(self) -> None:
        return None
