"""Start NATS and every service in one process, feed it sources, wait until drained."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from prometheus_client import REGISTRY

from camsight.bus import Bus, connect, subjects
from camsight.bus.rpc import request
from camsight.cameras import CameraConfig, Pacing, Rule, RuleType
from camsight.config import HttpSettings, NatsSettings, Settings
from camsight.decoder.sources import SourceKind, classify
from camsight.natsauth import admin_user, authorization, credentials, service_users
from camsight.natsserver import EmbeddedNats
from camsight.query.service import QueryService
from camsight.runtime.serve import Runtime
from camsight.runtime.service import Service
from camsight.stores.cameras import Registry
from camsight.v1 import camera_pb2, event_pb2, identity_pb2

log = logging.getLogger(__name__)

# Every service of the pipeline, found by module path (services never import each other).
PIPELINE_SERVICES = (
    "camsight.decoder.service:DecoderService",
    "camsight.detector.service:DetectorService",
    "camsight.face.service:FaceService",
    "camsight.behavior.service:BehaviorService",
    "camsight.query.service:QueryService",
)
# What a camera that is not in the config file reports: people, and faces
# (recognised or not). Motion alone is not an event.
DEFAULT_RULES = [
    Rule(id="people", type=RuleType.OBJECT_DETECTED, labels=["person"]),
    Rule(id="known-faces", type=RuleType.FACE_RECOGNIZED),
    Rule(id="unknown-faces", type=RuleType.UNKNOWN_FACE),
]
FINAL_STATES = {camera_pb2.CAMERA_STATE_ENDED, camera_pb2.CAMERA_STATE_ERROR}
_NOT_ID = re.compile(r"[^A-Za-z0-9_-]+")


class PipelineFailed(RuntimeError):
    """A service cannot become ready and waiting will not help (an analyzer failed to
    load): the run stops instead of waiting for it."""


def load_service(path: str) -> type[Service]:
    module, _, attr = path.partition(":")
    cls: type[Service] = getattr(importlib.import_module(module), attr)
    return cls


def source_key(source: str) -> str:
    """What makes two spellings of a source the same camera: a local file or folder's
    resolved path (``scene/x.mp4``, ``./scene/x.mp4``, ``/abs/scene/x.mp4``, ``file://...``),
    else the URI or device as written."""
    kind, target = classify(source)
    if kind in (SourceKind.FILE, SourceKind.FOLDER):
        return str(Path(target).expanduser().resolve())
    return source


def source_cameras(
    sources: Sequence[str], *, realtime: bool, base: Sequence[CameraConfig] = ()
) -> list[CameraConfig]:
    """The cameras a run analyses: one per source, or every configured camera when no
    source is named.

    A source that is also the ``source`` of a configured camera (the same file by its
    resolved path, or the same URI) runs that camera, with its settings (zones,
    rules...). Any other source becomes a new camera named after the file
    (``bikes.mp4`` -> ``bikes``) with the default rules.
    """
    configured = {source_key(c.source): c for c in base}
    taken = {c.id for c in base}
    cameras: list[CameraConfig] = [] if sources else list(base)
    taken_now: set[str] = set()
    for source in sources:
        camera = configured.get(source_key(source))
        if camera is None:
            stem = _NOT_ID.sub("_", Path(source.split("?")[0]).stem or "camera")[:56].strip("_") or "camera"
            camera_id, n = stem, 2
            while camera_id in taken:
                camera_id, n = f"{stem}_{n}", n + 1
            camera = CameraConfig(id=camera_id, source=source, rules=DEFAULT_RULES)
        elif camera.id in taken_now:
            continue  # the same configured camera named twice runs once
        taken.add(camera.id)
        taken_now.add(camera.id)
        cameras.append(camera)
    if realtime:
        cameras = [c.model_copy(update={"pacing": Pacing.REALTIME}) for c in cameras]
    return cameras


def not_run(base: Sequence[CameraConfig], cameras: Sequence[CameraConfig]) -> list[CameraConfig]:
    """Configured cameras that a run with these sources leaves out (to warn about)."""
    running = {c.id for c in cameras}
    return [c for c in base if c.id not in running]


@dataclass
class PipelineSummary:
    """What a run did, for the closing summary and ``--json`` consumers."""

    seconds: float = 0.0
    cameras: dict[str, camera_pb2.CameraStatus] = field(default_factory=dict)
    events_by_type: Counter[str] = field(default_factory=Counter)
    events: dict[str, event_pb2.Event] = field(default_factory=dict)
    # analyzer -> outcome (analyzed, dropped, failed, skipped) -> frames
    analyzer_frames: dict[str, dict[str, int]] = field(default_factory=dict)
    detector: str = ""  # what detected objects (camsight.run.detector)
    detector_fallback: str | None = None  # why not the COCO detector, and the command that gets it

    @property
    def frames_decoded(self) -> int:
        return sum(s.frames_published for s in self.cameras.values())

    @property
    def frames_dropped(self) -> int:
        return sum(s.frames_dropped for s in self.cameras.values())

    @property
    def errors(self) -> dict[str, str]:
        return {
            cid: s.last_error for cid, s in self.cameras.items() if s.state == camera_pb2.CAMERA_STATE_ERROR
        }

    @property
    def failed_analyzers(self) -> list[str]:
        """One line per analyzer that failed on every frame it was given: a run that found
        nothing because of it must not pass for one that had nothing to find."""
        return [
            f"analyzer {name} failed on all {counts['failed']} frames it was given (its error is above)"
            for name, counts in sorted(self.analyzer_frames.items())
            if counts.get("failed") and not counts.get("analyzed")
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "frames_decoded": self.frames_decoded,
            "frames_dropped": self.frames_dropped,
            "analyzer_frames": self.analyzer_frames,
            "fps": round(self.frames_decoded / self.seconds, 2) if self.seconds else 0.0,
            "events_by_type": dict(sorted(self.events_by_type.items())),
            "errors": self.errors,
            # a mapping: the report shows it as a small table, not as a big number
            "detector": {"used": self.detector}
            | ({"fallback": self.detector_fallback} if self.detector_fallback else {}),
        }


EventCallback = Callable[[event_pb2.Event], Awaitable[None] | None]
StatusCallback = Callable[[camera_pb2.CameraStatus], Awaitable[None] | None]


def analyzer_counts() -> dict[str, dict[str, int]]:
    """Frames per analyzer and outcome, from the analyzer hosts' metrics.

    In embedded mode every service runs in this process, so the Prometheus
    registry already holds what each analyzer did.
    """
    counts: dict[str, dict[str, int]] = {}
    for metric in REGISTRY.collect():
        if metric.name != "camsight_analyzer_frames":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                per = counts.setdefault(sample.labels.get("analyzer", "?"), {})
                outcome = sample.labels.get("outcome", "?")
                per[outcome] = per.get(outcome, 0) + int(sample.value)
    return counts


class EmbeddedPipeline:
    """A private nats-server in ``data_dir/nats`` plus every service, in this process.

    Least privilege holds here too (decision 0081): each pipeline generates a NATS
    user with a fresh random password per hosted service (only in memory and in
    the server's private config file), and each service connects as its own
    user. This object's own connection (:attr:`bus`: registering cameras,
    enrolling, watching events, reports) is an unrestricted admin user, which
    also declares the topology.

    The cameras that play are exactly those :meth:`add_cameras` registers: a
    data folder may be reused, so the registry left by earlier runs is emptied
    at start (unless ``keep_cameras``: ``camsight console --data-dir`` shows a finished
    run's cameras), and the ``cameras`` of the settings are not seeded (a caller
    takes what it wants from them, as ``camsight run`` does for its sources).
    """

    def __init__(
        self,
        settings: Settings,
        data_dir: Path,
        *,
        services: Sequence[str] = PIPELINE_SERVICES,
        nats_log: Path | None = None,
        keep_cameras: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.service_classes = [load_service(p) for p in services]
        self.users = service_users([cls.name for cls in self.service_classes])
        self.admin = admin_user()
        self.nats = EmbeddedNats(
            store_dir=data_dir / "nats",
            log_file=nats_log,
            authorization=authorization(self.users, self.admin),
        )
        self.settings = settings
        self.keep_cameras = keep_cameras
        self.runtime: Runtime | None = None
        self._task: asyncio.Task[int] | None = None

    async def __aenter__(self) -> EmbeddedPipeline:
        # ``async with`` calls __aexit__ only once __aenter__ returned: a start that fails
        # or is interrupted must stop what it started (services, nats-server, its folder).
        try:
            return await self._start()
        except BaseException:
            await self.__aexit__()
            raise

    def check(self) -> None:
        """Construct every service as :meth:`__aenter__` will, and start nothing: a setting
        they refuse (a typo in an analyzer's config, an analyzer two plugins declare) raises
        its one-line :class:`~camsight.config.ConfigError` now, before nats-server starts and
        before ``camsight run`` draws its progress bars."""
        Runtime(self._for_services(self.settings.nats), self.service_classes, name="run")

    def _for_services(self, nats: NatsSettings) -> Settings:
        """The settings the services run with: ``nats``; everything on loopback, on ports nobody
        else can hold (several runs may share a machine; a config file can still choose the
        gRPC port); this data folder; no camera of the config (:meth:`add_cameras` adds them)."""
        query = {"host": "127.0.0.1", "port": 0, **self.settings.services.get("query", {})}
        update = {
            "nats": nats,
            "cameras": [],
            "http": HttpSettings(host="127.0.0.1", port=0),
            "data_dir": self.data_dir,
            "services": {**self.settings.services, "query": query},
        }
        return self.settings.model_copy(update=update)

    async def _start(self) -> EmbeddedPipeline:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # From the event loop's thread, which outlives the server (EmbeddedNats.spawn).
        self.nats.spawn()
        await asyncio.to_thread(self.nats.wait_ready)
        admin = self._nats_as(credentials(self.admin), declare_topology=True)
        if not self.keep_cameras:  # a run plays only its own cameras; a look at a folder keeps them
            await self._forget_earlier_cameras(admin)
        self.settings = self._for_services(admin)
        own = {name: self._nats_as(credentials(user)) for name, user in self.users.items()}
        self.runtime = Runtime(self.settings, self.service_classes, name="run", connections=own)
        self._task = asyncio.create_task(self.runtime.run())
        await self._wait_ready()
        return self

    async def _forget_earlier_cameras(self, admin: NatsSettings) -> None:
        """Empty the camera registry and statuses an earlier run in this data folder left,
        before any decoder reads them: else those cameras would play again, unwaited for,
        and :meth:`wait_finished` could take an earlier run's "ended" for this one's."""
        bus = await connect(admin, self.settings.streams, name="camsight-run-setup")
        try:
            await bus.ensure_topology()
            for bucket in (subjects.CAMERAS_BUCKET, subjects.CAMERA_STATUS_BUCKET):
                kv = await bus.kv(bucket)
                for key in await bus.kv_keys(bucket):
                    await kv.purge(key)
        finally:
            await bus.close()

    def _nats_as(self, creds: dict[str, str], declare_topology: bool = False) -> NatsSettings:
        """The configured NATS settings, pointed at the embedded server as one user."""
        return NatsSettings.model_validate(
            {
                **self.settings.nats.model_dump(exclude={"token", "creds_file", "nkey_seed_file"}),
                "servers": [self.nats.url],
                "declare_topology": declare_topology,
                **creds,
            }
        )

    async def _wait_ready(self, timeout: float = 300.0) -> None:
        assert self.runtime is not None and self._task is not None
        deadline = time.monotonic() + timeout
        while True:
            ready, reason = self.runtime.readiness()
            if ready:
                return
            if failures := self.runtime.failures():
                raise PipelineFailed("; ".join(failures))
            if self._task.done():
                self._task.result()  # raises the service's error
                raise RuntimeError(f"pipeline stopped before it was ready: {reason}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"pipeline not ready after {timeout:.0f}s: {reason}")
            await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        if self.runtime is not None and self._task is not None:
            self.runtime.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 60)
        await asyncio.to_thread(self.nats.stop)

    def abandoned(self) -> list[str]:
        """What the services stopped without (an analyzer call that never returned), once
        stopped: one line each, for the closing message."""
        return self.runtime.abandoned() if self.runtime is not None else []

    def abort(self) -> None:
        """Stop nats-server now, from a signal handler, when the process must end at once
        (a second Ctrl-C): its data is flushed, its folder removed; the services are not
        waited for."""
        self.nats.stop(timeout=5)

    def _query(self) -> QueryService:
        assert self.runtime is not None
        for service in self.runtime.services:
            if isinstance(service, QueryService):
                return service
        raise RuntimeError("this pipeline runs no query service")

    def grpc_target(self) -> str:
        """The query service's gRPC address, ``host:port`` (a free port on loopback unless the
        config's ``services.query`` names others)."""
        return self._query().local_target

    def console_url(self) -> str:
        """The web console's address (when ``services.query.console.enabled``, as with ``--console``)."""
        console = self._query().console
        if console is None:
            raise RuntimeError("the console is not enabled (services.query.console.enabled)")
        return console.url

    @property
    def bus(self) -> Bus:
        """The admin connection (not any service's)."""
        assert self.runtime is not None
        return self.runtime.ctx.bus

    async def add_cameras(self, cameras: Sequence[CameraConfig]) -> None:
        """Register cameras in the registry: the decoder picks them up live."""
        registry = Registry(self.bus)
        for camera in cameras:
            await registry.put(camera.to_proto())

    async def enroll_face(self, identity_id: str, name: str, image: bytes) -> identity_pb2.Identity:
        """Enroll a face through the face service's endpoint (as the gRPC API does)."""
        payload = identity_pb2.EnrollRequest(identity_id=identity_id, display_name=name, image=image)
        raw = await request(self.bus, subjects.FACE_ENROLL_SUBJECT, payload.SerializeToString(), timeout=60)
        reply = identity_pb2.EnrollReply.FromString(raw)
        if reply.error:
            raise ValueError(f"enrolling {name!r} was refused: {reply.error}")
        return reply.identity

    @contextlib.asynccontextmanager
    async def watch_events(self, callback: EventCallback, settle_s: float = 60.0) -> AsyncIterator[None]:
        """Call ``callback`` for every event stored from now on (an ordered consumer;
        the events of earlier runs in a reused data folder are not replayed).

        A block that ends normally first waits (at most ``settle_s``) until ``callback``
        has had every event stored before the end: events the server has delivered but
        the callback has not reached yet would be dropped with the subscription, so under
        load a run could lose its last events (``drained`` counts them as delivered).
        """
        js = self.bus.js
        start = (await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
        handled = start
        progressed = asyncio.Event()

        async def on_msg(msg: Msg) -> None:
            nonlocal handled
            try:
                result = callback(event_pb2.Event.FromString(msg.data))
                if asyncio.iscoroutine(result):
                    await result
            finally:  # handed on even if the callback failed (a closed stdout): no wait for it
                handled = msg.metadata.sequence.stream
                progressed.set()

        # By sequence, not DeliverPolicy.NEW: exactly the events after `start`, so the
        # wait below knows which to expect.
        since = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start + 1)
        sub = await js.subscribe(subjects.EVENTS_ALL, cb=on_msg, ordered_consumer=True, config=since)
        try:
            yield
            last = (await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
            try:
                async with asyncio.timeout(settle_s):
                    while handled < last:
                        progressed.clear()
                        await progressed.wait()
            except TimeoutError:
                log.warning(
                    "events after #%d were not all handed on within %.0fs (%d stored)",
                    handled,
                    settle_s,
                    last,
                )
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def statuses(self, camera_ids: Sequence[str]) -> dict[str, camera_pb2.CameraStatus]:
        kv = await self.bus.kv(subjects.CAMERA_STATUS_BUCKET)
        found: dict[str, camera_pb2.CameraStatus] = {}
        for cid in camera_ids:
            try:
                entry = await kv.get(cid)
            except Exception:  # not written yet
                continue
            if entry.value:
                found[cid] = camera_pb2.CameraStatus.FromString(entry.value)
        return found

    async def drained(self) -> bool:
        """True when no consumer of the pipeline has pending or unacked messages."""
        for stream in (subjects.FRAMES_STREAM, subjects.DETECTIONS_STREAM, subjects.EVENTS_STREAM):
            for info in await self.bus.js.consumers_info(stream):
                if info.num_pending or info.num_ack_pending:
                    return False
        return True

    async def wait_finished(
        self,
        camera_ids: Sequence[str],
        on_status: StatusCallback | None = None,
        poll: float = 0.2,
    ) -> dict[str, camera_pb2.CameraStatus]:
        """Wait until every camera ended (or failed) and the pipeline drained.

        Status is read from the KV bucket each ``poll`` seconds (this also
        drives the progress bars); draining is checked twice in a row so a
        message between two stages is not missed.
        """
        clean_passes = 0
        while True:
            statuses = await self.statuses(camera_ids)
            if on_status is not None:
                for status in statuses.values():
                    result = on_status(status)
                    if asyncio.iscoroutine(result):
                        await result
            finished = len(statuses) == len(camera_ids) and all(
                s.state in FINAL_STATES for s in statuses.values()
            )
            clean_passes = clean_passes + 1 if finished and await self.drained() else 0
            if clean_passes >= 2:
                return statuses
            if self._task is not None and self._task.done():
                raise RuntimeError("a service stopped unexpectedly; see the log above")
            await asyncio.sleep(poll)
