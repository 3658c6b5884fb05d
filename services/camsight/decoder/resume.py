"""Files are jobs: where a file camera stands when a replica comes to own it (decision 0012).

The registry outlives every decoder. Without this, a decoder restart, a rolling
upgrade, a rebalance or the takeover of a dead replica's cameras would start
every file from its first frame: finished files analysed again, unfinished
ones analysed again up to where they were, their frame numbers restarted.
The KV revision of the camera's registry entry tells runs of a camera apart:
status records and frames carry it (``camera_revision``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from camsight.bus import BUS_ERRORS, Bus, subjects
from camsight.cameras import CameraConfig
from camsight.decoder.sources import SourceKind, classify
from camsight.decoder.status import StatusReporter
from camsight.v1 import camera_pb2, frame_pb2

log = logging.getLogger(__name__)
RESUMABLE = (SourceKind.FILE, SourceKind.FOLDER)


@dataclass(frozen=True)
class Resume:
    """Go on after this message (a frame, or the end marker) of the camera on FRAMES."""

    seq: int
    media_time: float


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
    bus: Bus, camera: CameraConfig, status: StatusReporter, record: camera_pb2.CameraStatus | None
) -> Resume | None:
    """Where a file or folder goes on: after the newest message FRAMES holds for it, if that
    message was decoded under the same registry revision. None: from the start (a live
    source, a new revision, nothing kept any more, or the stream unreadable).

    Counters carry on from the status ``record``, with ``published`` taken from the
    stream, which the record may lag by a status interval.
    """
    if not status.camera_revision or classify(camera.source)[0] not in RESUMABLE:
        return None
    try:
        data = await bus.direct_get(subjects.FRAMES_STREAM, last_on=subjects.frames(camera.id))
        last = frame_pb2.Frame.FromString(data) if data else None
    except (*BUS_ERRORS, DecodeError) as exc:
        log.warning("camera %s: cannot read its last frame (%s); decoding from the start", camera.id, exc)
        return None
    if last is None or last.camera_revision != status.camera_revision or last.seq < 1:
        return None
    if record is not None and record.camera_revision == status.camera_revision:
        status.restore(record)
    status.published = max(0, last.seq - int(last.end_of_stream) - status.dropped)
    media_time = last.media_time.ToNanoseconds() / 1e9
    log.info(
        "camera %s resumes after frame %d (media time %.3fs)",
        camera.id,
        last.seq,
        media_time,
        extra={"camera": camera.id},
    )
    return Resume(last.seq, media_time)
