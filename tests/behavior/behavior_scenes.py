"""Synthetic scenes whose truth is known, as AnalysisResult streams.

Frames run at 8 fps so every media time is exact in binary floating point
(0.125 s steps): durations compare exactly and tests can name the frame an
event must fire on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from camsight.behavior.engine import Engine
from camsight.behavior.events import Emission
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import CameraConfig
from camsight.v1 import analysis_pb2, event_pb2, frame_pb2

FPS = 8
EPOCH = 1_800_000_000
CAMERA = "cam"
Box = tuple[float, float, float, float]
Track = Callable[[int], Box | None]
"""An object's box at frame ``seq``, or None when it is not in the frame."""


def capture_seconds(seq: int) -> float:
    return EPOCH + (seq - 1) / FPS


def ref(seq: int, camera: str = CAMERA) -> frame_pb2.FrameRef:
    r = frame_pb2.FrameRef(
        camera_id=camera, seq=seq, stream="FRAMES", stream_sequence=seq, width=640, height=480
    )
    r.capture_time.FromNanoseconds(int(capture_seconds(seq) * 1e9))
    r.media_time.FromNanoseconds((seq - 1) * 1_000_000_000 // FPS)
    return r


def detection(
    box: Box, label: str = "person", score: float = 0.9, identity: analysis_pb2.IdentityMatch | None = None
) -> analysis_pb2.Detection:
    d = analysis_pb2.Detection(
        label=label, score=score, box=analysis_pb2.BoundingBox(x1=box[0], y1=box[1], x2=box[2], y2=box[3])
    )
    if identity is not None:
        d.identity.CopyFrom(identity)
    return d


def result(
    seq: int,
    detections: Sequence[analysis_pb2.Detection] = (),
    camera: str = CAMERA,
    analyzer: str = "hog",
    kind: str = "objects",
    skipped: bool = False,
) -> analysis_pb2.AnalysisResult:
    return analysis_pb2.AnalysisResult(
        frame=ref(seq, camera), analyzer=analyzer, kind=kind, detections=list(detections), skipped=skipped
    )


def mover(
    start: tuple[float, float],
    step: tuple[float, float],
    size: tuple[float, float] = (0.1, 0.2),
    first: int = 1,
    last: int = 10**9,
) -> Track:
    """A box whose bottom-centre starts at ``start`` on frame ``first`` and moves ``step`` per frame."""

    def box(seq: int) -> Box | None:
        if not first <= seq <= last:
            return None
        cx = start[0] + step[0] * (seq - first)
        by = start[1] + step[1] * (seq - first)
        return (cx - size[0] / 2, by - size[1], cx + size[0] / 2, by)

    return box


def path(points: dict[int, tuple[float, float]], size: tuple[float, float] = (0.1, 0.2)) -> Track:
    """A box whose bottom-centre is at ``points[seq]`` (absent = not in the frame)."""

    def box(seq: int) -> Box | None:
        if seq not in points:
            return None
        cx, by = points[seq]
        return (cx - size[0] / 2, by - size[1], cx + size[0] / 2, by)

    return box


def scene(
    frames: int, tracks: Iterable[Track], label: str = "person", **kw: Any
) -> list[analysis_pb2.AnalysisResult]:
    tracks = list(tracks)
    out = []
    for seq in range(1, frames + 1):
        boxes = [b for b in (t(seq) for t in tracks) if b is not None]
        out.append(result(seq, [detection(b, label) for b in boxes], **kw))
    return out


def camera(**fields: Any) -> CameraConfig:
    return CameraConfig.model_validate({"id": CAMERA, "source": "file:///scene.mp4"} | fields)


def run(
    config: CameraConfig, results: Iterable[analysis_pb2.AnalysisResult], **settings: Any
) -> list[event_pb2.Event]:
    """Feed results through a fresh engine; returns the event messages in publish order."""
    engine = Engine(BehaviorSettings(**settings))
    engine.set_camera(config)
    out: list[Emission] = []
    for r in results:
        out.extend(engine.push(r))
    out.extend(engine.flush())
    return [e.event for e in out if e.event is not None]


def seq_of(ts: Any) -> int:
    """The frame seq whose capture time is ``ts`` (a Timestamp)."""
    return round((ts.ToNanoseconds() / 1e9 - EPOCH) * FPS) + 1


def of_type(events: Iterable[event_pb2.Event], name: str) -> list[event_pb2.Event]:
    t = event_pb2.EventType.Value(f"EVENT_TYPE_{name.upper()}")
    return [e for e in events if e.type == t]
