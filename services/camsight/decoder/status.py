"""One camera's status: counters, state, the ``camera_status`` KV record, events, metrics.

The KV record (key = camera id, value = camsight.v1.CameraStatus) is what
operators and the query service read; a ``camera_status`` Event on EVENTS
marks every state change so it is searchable in the event history. Both
carry only redacted errors (the caller redacts; sources never put
credentials in messages).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from typing import TypeAlias

import nats.js.errors
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter, Gauge

from camsight.bus import BUS_ERRORS, Bus, subjects
from camsight.v1 import camera_pb2, event_pb2

log = logging.getLogger(__name__)

State: TypeAlias = camera_pb2.CameraState.ValueType
STATES: dict[State, str] = {
    camera_pb2.CAMERA_STATE_STARTING: "starting",
    camera_pb2.CAMERA_STATE_ONLINE: "online",
    camera_pb2.CAMERA_STATE_OFFLINE: "offline",
    camera_pb2.CAMERA_STATE_ERROR: "error",
    camera_pb2.CAMERA_STATE_ENDED: "ended",
    camera_pb2.CAMERA_STATE_STOPPED: "stopped",
}

PUBLISHED = Counter("camsight_decoder_frames_published", "Frames published", ["camera"])
DROPPED = Counter("camsight_decoder_frames_dropped", "Frames decoded but not published", ["camera"])
CORRUPT = Counter(
    "camsight_decoder_frames_corrupt", "Frames that could not be decoded or encoded", ["camera"]
)
FPS = Gauge("camsight_decoder_fps", "Frames published per second (last few seconds)", ["camera"])
STATE = Gauge("camsight_decoder_camera_state", "1 for the camera's current state", ["camera", "state"])
FPS_WINDOW_S = 5.0


def now_ts() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


class StatusReporter:
    """Counts and reports one camera; used from the event loop (counters also from its thread)."""

    def __init__(self, bus: Bus, camera_id: str, decoder_id: str, camera_revision: int = 0) -> None:
        self.bus = bus
        self.camera_id = camera_id
        self.decoder_id = decoder_id
        self.camera_revision = camera_revision  # of the registry entry being decoded
        self.state: State = camera_pb2.CAMERA_STATE_UNSPECIFIED
        self.last_error = ""
        self.published = 0
        self.dropped = 0
        self.corrupt = 0
        self.progress = 0.0
        self._last_frame_ns = 0  # wall clock; a Timestamp is built only for the status record
        self._times: deque[float] = deque()
        self._published_metric = PUBLISHED.labels(camera_id)  # per frame: skip the label lookup

    def restore(self, record: camera_pb2.CameraStatus) -> None:
        """Carry on from a status record written earlier (by this or another replica)."""
        self.state = record.state
        self.last_error = record.last_error
        self.published = record.frames_published
        self.dropped = record.frames_dropped
        self.corrupt = record.frames_corrupt
        self.progress = record.progress
        self._last_frame_ns = record.last_frame_time.ToNanoseconds()
        self._export_state()

    def _export_state(self) -> None:
        for value, name in STATES.items():
            STATE.labels(self.camera_id, name).set(1.0 if value == self.state else 0.0)

    def frame_published(self, progress: float) -> None:
        """Count a frame the stream stored; ``progress``: the file's, up to this frame."""
        self.published += 1
        self.progress = progress
        self._last_frame_ns = time.time_ns()
        self._times.append(time.monotonic())
        self._published_metric.inc()

    def frame_dropped(self) -> None:
        self.dropped += 1
        DROPPED.labels(self.camera_id).inc()

    def frame_corrupt(self) -> None:
        self.corrupt += 1
        CORRUPT.labels(self.camera_id).inc()

    def fps(self) -> float:
        now = time.monotonic()
        while self._times and now - self._times[0] > FPS_WINDOW_S:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(now - self._times[0], 1e-6)

    def message(self) -> camera_pb2.CameraStatus:
        fps = self.fps()
        FPS.labels(self.camera_id).set(fps)
        status = camera_pb2.CameraStatus(
            camera_id=self.camera_id,
            state=self.state,
            fps=fps,
            frames_published=self.published,
            frames_dropped=self.dropped,
            frames_corrupt=self.corrupt,
            last_error=self.last_error,
            update_time=now_ts(),
            decoder_id=self.decoder_id,
            progress=self.progress,
            camera_revision=self.camera_revision,
        )
        if self._last_frame_ns:
            status.last_frame_time.FromNanoseconds(self._last_frame_ns)
        return status

    async def set_state(self, state: State, error: str | None = None) -> None:
        """Change state (and the last error when given); report at once if anything changed."""
        changed = state != self.state
        if error is not None and error != self.last_error:
            self.last_error = error
        elif not changed:
            return
        if changed:
            self.state = state
            self._export_state()
            level = logging.WARNING if state == camera_pb2.CAMERA_STATE_ERROR else logging.INFO
            log.log(
                level,
                "camera %s is %s%s",
                self.camera_id,
                STATES.get(state, "?"),
                f": {self.last_error}" if self.last_error and state != camera_pb2.CAMERA_STATE_ONLINE else "",
                extra={"camera": self.camera_id, "state": STATES.get(state, "?")},
            )
        await self.write()
        if changed:
            await self._event()

    async def read(self) -> camera_pb2.CameraStatus | None:
        """The camera's status record as the bucket has it now (None: none, or unreadable)."""
        try:
            kv = await self.bus.kv(subjects.CAMERA_STATUS_BUCKET)
            return camera_pb2.CameraStatus.FromString((await kv.get(self.camera_id)).value or b"")
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        except (*BUS_ERRORS, DecodeError) as exc:
            log.warning("cannot read status of camera %s: %s", self.camera_id, exc)
            return None

    async def write(self) -> None:
        """Put the status record into the ``camera_status`` bucket."""
        try:
            kv = await self.bus.kv(subjects.CAMERA_STATUS_BUCKET)
            await kv.put(self.camera_id, self.message().SerializeToString())
        except BUS_ERRORS as exc:
            log.warning("cannot write status of camera %s: %s", self.camera_id, exc)

    async def _event(self) -> None:
        now = now_ts()
        name = STATES.get(self.state, "unknown")
        attributes = {"state": name, "decoder_id": self.decoder_id}
        if self.last_error and self.state != camera_pb2.CAMERA_STATE_ONLINE:
            attributes["error"] = self.last_error
        event = event_pb2.Event(
            # Stable for retries of this change, unique across decoder restarts.
            id=f"{self.camera_id}-status-{now.ToMilliseconds()}",
            type=event_pb2.EVENT_TYPE_CAMERA_STATUS,
            state=event_pb2.EVENT_STATE_ENDED,
            camera_id=self.camera_id,
            start_time=now,
            end_time=now,
            update_time=now,
            attributes=attributes,
            explanation=event_pb2.EventExplanation(summary=f"camera {self.camera_id} is {name}"),
        )
        try:
            await self.bus.publish_event(event)
        except BUS_ERRORS as exc:
            log.warning("cannot publish status event of camera %s: %s", self.camera_id, exc)

    def forget_metrics(self) -> None:
        """Drop this camera's metric series (it moved to another replica or was removed)."""
        for metric in (PUBLISHED, DROPPED, CORRUPT, FPS):
            with contextlib.suppress(KeyError):
                metric.remove(self.camera_id)
        for name in STATES.values():
            with contextlib.suppress(KeyError):
                STATE.remove(self.camera_id, name)
