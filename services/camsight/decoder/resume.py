"""Files are jobs: where a file camera stands when a replica comes to own it (decision 0012).

The registry outlives every decoder. Without this, a decoder restart, a rolling
upgrade, a rebalance or the takeover of a dead replica's cameras would start
every file from its first frame: finished files analysed again, unfinished
ones analysed again up to where they were, their frame numbers restarted.
The KV revision of the camera's registry entry tells runs of a camera apart:
status records and frames carry it (``camera_revision``).

FRAMES is a memory stream: a nats-server restarted without a cluster comes
back without it, and the frames the analyzers had not acknowledged are gone.
A replica that was decoding the file then goes on after the last frame every
analyzer acknowledged, which it knows and the stream no longer does
(:class:`Resume` as a *rewind*, decision 0083).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from camsight.bus import BUS_ERRORS, Bus, subjects
from camsight.cameras import CameraConfig
from camsight.decoder.sources import SourceKind, classify
from camsight.decoder.status import StatusReporter
from camsight.v1 import camera_pb2, frame_pb2

log = logging.getLogger(__name__)
RESUMABLE = (SourceKind.FILE, SourceKind.FOLDER)


@dataclass(frozen=True)
class Owed:
    """A frame FRAMES stored that the analyzers may not all have acknowledged yet."""

    stream_seq: int
    seq: int


async def holds(bus: Bus, camera_id: str, owed: Owed | None) -> bool:
    """FRAMES still holds ``owed`` (True when nothing is owed). A restarted nats-server loses
    a memory stream: it comes back without it, or in a cluster empty and numbering from 1
    again, so the sequence then holds nothing, or another message."""
    if owed is None:
        return True
    data = await bus.direct_get(subjects.FRAMES_STREAM, owed.stream_seq)
    try:
        frame = frame_pb2.Frame.FromString(data) if data else None
    except DecodeError:
        return False
    return frame is not None and frame.camera_id == camera_id and frame.seq == owed.seq


@dataclass(frozen=True)
class Resume:
    """Go on after this message (a frame, or the end marker) of the camera on FRAMES; seq 0:
    from the start."""

    seq: int
    media_time: float
    origin: Timestamp | None = None
    """The file's ``media_origin``: events of the frames after ``seq`` keep their times."""
    replay: Mapping[int, Timestamp] = field(default_factory=dict)
    """Frames after ``seq`` that may have reached a consumer already, by seq: the capture time
    they are published with again. Behavior takes an earlier frame number with a later capture
    time for a restart of the camera; the same frame again is only late, and dropped."""
    owed: Owed | None = None
    """A rewind's: the oldest frame the analyzers may still have owed an ack; still on FRAMES,
    FRAMES lost nothing."""

    @property
    def newest(self) -> int:
        """The newest frame (or end marker) of the camera that was sent."""
        return max(self.replay, default=self.seq)


def already_ended(record: camera_pb2.CameraStatus | None, status: StatusReporter) -> bool:
    """The source was read to its end (by this replica or another) for the registry
    revision ``status`` is for: then ``status`` carries on from ``record``, and the camera
    is not decoded again until its entry is written again."""
    if (
        record is None
        or record.state != camera_pb2.CAMERA_STATE_ENDED
        or not status.camera_revision
        or record.camera_revision != status.camera_revision
    ):
        return False
    status.restore(record)
    return True


async def resume_point(
    bus: Bus,
    camera: CameraConfig,
    status: StatusReporter,
    record: camera_pb2.CameraStatus | None,
    rewind: Resume | None = None,
) -> Resume | None:
    """Where a file or folder goes on: after the newest message FRAMES holds for it, if that
    message was decoded under the same registry revision. None: from the start (a live
    source, a new revision, nothing kept any more, or the stream unreadable).

    ``rewind``: where this replica's own worker stopped, after the last frame every analyzer
    acknowledged. It wins unless FRAMES still holds what the analyzers owed that worker (then
    FRAMES lost nothing) or a newer frame than any it sent (another replica went on meanwhile).

    Counters carry on from the status ``record``, with ``published`` taken from the
    stream (or the rewind), which the record may lag by a status interval.
    """
    if not status.camera_revision or classify(camera.source)[0] not in RESUMABLE:
        return None
    try:
        data = await bus.direct_get(subjects.FRAMES_STREAM, last_on=subjects.frames(camera.id))
        last = frame_pb2.Frame.FromString(data) if data else None
        if last is not None and (last.camera_revision != status.camera_revision or last.seq < 1):
            last = None
        went_on = last is not None and rewind is not None and last.seq > rewind.newest
        lost = rewind is not None and not went_on and not await holds(bus, camera.id, rewind.owed)
    except (*BUS_ERRORS, DecodeError) as exc:
        log.warning("camera %s: cannot read its last frame (%s); decoding from the start", camera.id, exc)
        return None
    if rewind is not None and lost:
        _carry_on(record, status, rewind.seq)
        log.warning(
            "camera %s goes on after frame %d (media time %.3fs), the last every analyzer "
            "acknowledged: FRAMES lost the frames after it",
            camera.id,
            rewind.seq,
            rewind.media_time,
            extra={"camera": camera.id},
        )
        return rewind
    if last is None:
        return None
    _carry_on(record, status, last.seq - int(last.end_of_stream))
    media_time = last.media_time.ToNanoseconds() / 1e9
    log.info(
        "camera %s resumes after frame %d (media time %.3fs)",
        camera.id,
        last.seq,
        media_time,
        extra={"camera": camera.id},
    )
    return Resume(last.seq, media_time, last.media_origin if last.HasField("media_origin") else None)


def _carry_on(record: camera_pb2.CameraStatus | None, status: StatusReporter, frames: int) -> None:
    """Counters from ``record`` (this revision's), and ``frames`` published before."""
    if record is not None and record.camera_revision == status.camera_revision:
        status.restore(record)
    status.published = max(0, frames - status.dropped)
