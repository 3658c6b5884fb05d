"""The small value types the engine passes around: frames, tracks, evidence."""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from camsight.behavior.geometry import XY, anchor_point, hull
from camsight.cameras import Anchor
from camsight.v1 import analysis_pb2, frame_pb2

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Frame:
    """One processed result's frame: where it is in the stream and in time.

    ``t`` is media time in seconds (capture time when the decoder sent no
    media time): every duration a rule measures is a difference of ``t``, so
    tests are exact and a slow pipeline does not stretch a dwell time.
    ``wall`` is the wall-clock time the picture shows: the file's
    ``media_origin`` plus its media time for a recording, the capture time
    for a live source. ``recorded`` tells the two apart (event ids of a
    recording derive from media time, so re-analysing it gives the same ids).
    """

    camera: str
    analyzer: str
    seq: int
    t: float
    ref: frame_pb2.FrameRef
    wall: Timestamp
    recorded: bool
    skipped: bool = False
    """The analyzer evaluated nothing at this frame (a clip analyzer between windows)."""
    scene: tuple[analysis_pb2.Detection, ...] = ()
    """Scene labels: detections whose box is the whole picture (clip analyzers' labels).
    They are not tracked; ``action`` rules read them."""

    @classmethod
    def of(cls, result: analysis_pb2.AnalysisResult) -> Frame:
        ref = result.frame
        if ref.HasField("media_time"):
            t = ref.media_time.seconds + ref.media_time.nanos / 1e9
        else:
            t = ref.capture_time.seconds + ref.capture_time.nanos / 1e9
        recorded = ref.HasField("media_origin")
        if recorded:
            wall = Timestamp()
            wall.FromNanoseconds(ref.media_origin.ToNanoseconds() + ref.media_time.ToNanoseconds())
        else:
            wall = ref.capture_time
        scene = tuple(d for d in result.detections if is_scene_label(d))
        return cls(ref.camera_id, result.analyzer, ref.seq, t, ref, wall, recorded, result.skipped, scene)

    @property
    def media_ns(self) -> int:
        return int(self.ref.media_time.ToNanoseconds())

    def __reduce__(self) -> tuple[Any, ...]:
        # Checkpoints pickle every frame a track remembers: a constructor call is about
        # twice as fast as the dataclass default for slots (a state list, set field by field).
        fields = (self.camera, self.analyzer, self.seq, self.t, self.ref, self.wall, self.recorded)
        return Frame, (*fields, self.skipped, self.scene)


def is_scene_label(det: analysis_pb2.Detection) -> bool:
    """A detection of the whole picture: no box, or the default one (0, 0, 1, 1)."""
    b = det.box
    return not det.HasField("box") or (b.x1 <= 0.0 and b.y1 <= 0.0 and b.x2 >= 1.0 and b.y2 >= 1.0)


@dataclass(frozen=True, slots=True)
class Sighting:
    """One detection of a track in one frame."""

    frame: Frame
    detection: analysis_pb2.Detection
    box: Box

    @classmethod
    def of(cls, frame: Frame, det: analysis_pb2.Detection) -> Sighting:
        return cls(frame, det, (det.box.x1, det.box.y1, det.box.x2, det.box.y2))

    def anchor(self, anchor: Anchor) -> XY:
        return anchor_point(self.box, anchor)

    def __reduce__(self) -> tuple[Any, ...]:
        # As Frame: a track keeps 64 of these, most of a checkpoint's pickling time.
        return Sighting, (self.frame, self.detection, self.box)


@dataclass(frozen=True, slots=True, eq=False)
class Evidence:
    """A detection in a frame: what fired an event, and a snapshot candidate."""

    frame: Frame
    detection: analysis_pb2.Detection

    @property
    def score(self) -> float:
        return self.detection.score


def _median_centre(sightings: list[Sighting]) -> tuple[float, float]:
    return (
        statistics.median((s.box[0] + s.box[2]) / 2 for s in sightings),
        statistics.median((s.box[1] + s.box[3]) / 2 for s in sightings),
    )


@dataclass(slots=True)
class Track:
    """A confirmed track: ``number`` (Event.track_id) within its analyzer, and its recent sightings.

    ``new`` holds the sightings the rules have not observed yet: the
    candidate's history when it was just confirmed, else this frame's
    sighting. The engine clears it once every rule stepped.
    """

    number: int
    key: str
    label: str
    analyzer: str
    first: Frame
    last: Frame
    detection: analysis_pb2.Detection
    boxes: deque[Box] = field(default_factory=deque)
    recent: deque[Sighting] = field(default_factory=lambda: deque(maxlen=64))
    new: list[Sighting] = field(default_factory=list)
    parked_until: float | None = None
    """Unseen past the lost-track budget: kept at its last box until it reappears or this media time."""
    standing: Box | None = None
    """Parked stationary: where it stood (:meth:`standing_place`)."""
    estimate: Box | None = None
    """Where the tracker places the object in the newest frame: the sighting's box when seen, the
    motion model's prediction while coasting, the last box when parked stationary, None when parked
    after moving (it may be anywhere). What tracking metrics score; rules use :attr:`box`."""
    memo: dict[Any, Any] = field(default_factory=dict)
    """Per-frame results shared by rules (anchor points, zone tests); cleared on every new box."""

    def see(self, sighting: Sighting) -> None:
        sighting.detection.track_id = self.number
        self.last, self.detection = sighting.frame, sighting.detection
        self.estimate = sighting.box
        self.boxes.append(sighting.box)
        self.recent.append(sighting)
        self.new.append(sighting)
        self.memo.clear()

    def window(self, window_s: float) -> list[Sighting]:
        """The sightings of the last ``window_s`` media seconds before the last one (at least two,
        when there are two)."""
        recent = list(self.recent)
        start = max(0, len(recent) - 2)
        while start > 0 and recent[-1].frame.t - recent[start - 1].frame.t <= window_s:
            start -= 1
        return recent[start:]

    def stationary(self, speed: float, window_s: float) -> bool:
        """:meth:`moved_slowly` over twice ``window_s`` of sightings (a few partial boxes in a
        short window can look like a step), or at half ``speed`` over ``window_s`` alone (a
        person who has just stopped: the long window still holds the walk in). Half, because
        over one second the estimate of a slow walker wanders about the threshold, and a
        walker judged stationary when unseen is kept at its last box for minutes.

        Asked for every unseen track on every frame; it changes only with a new sighting,
        so it is kept in :attr:`memo` until then."""
        key = ("stationary", speed, window_s)
        found: bool | None = self.memo.get(key)
        if found is None:
            found = self.memo[key] = self.moved_slowly(speed / 2, window_s) or self.moved_slowly(
                speed, 2 * window_s
            )
        return found

    def moved_slowly(self, speed: float, window_s: float) -> bool:
        """The object moved less than ``speed`` of its size per second over the last ``window_s``
        of sightings.

        Robust to partial detections (a background subtractor reports slivers of a
        person who sways in place, on either side of the body): the movement is that of
        the median centre of the window's later half against its earlier half, and the
        size is :attr:`size`, not the last sliver's.
        """
        window = self.window(window_s)
        if len(window) < 2:
            return False
        half = len(window) // 2
        early, late = window[:half], window[half:]
        elapsed = statistics.median(s.frame.t for s in late) - statistics.median(s.frame.t for s in early)
        if elapsed <= 0:
            return False
        (ax, ay), (bx, by) = _median_centre(early), _median_centre(late)
        moved = math.hypot(bx - ax, by - ay)
        return moved / self.size / elapsed < speed

    @property
    def size(self) -> float:
        """The object's size: the median box diagonal of its recent sightings (up to 64), so that
        partial boxes late in a track do not make it small."""
        return max(
            statistics.median(math.hypot(b[2] - b[0], b[3] - b[1]) for b in (s.box for s in self.recent)),
            1e-6,
        )

    def standing_place(self, window_s: float) -> Box:
        """Where a stationary object stands: the hull of its recent sightings (up to the last
        64) whose centres lie within half its size of the median centre of the last
        ``window_s``.

        A parked stationary track is continued by a detection inside it: what a motion
        detector still sees of a person standing there, a sliver on one side of the body
        or the other, is a part of that place. Sightings farther away (the walk in) are
        not.
        """
        cx, cy = _median_centre(self.window(window_s))
        recent = list(self.recent)
        reach = self.size / 2
        near = [
            s.box
            for s in recent
            if math.hypot((s.box[0] + s.box[2]) / 2 - cx, (s.box[1] + s.box[3]) / 2 - cy) <= reach
        ]
        return hull(near or [self.box])

    @property
    def box(self) -> Box:
        return self.boxes[-1]

    @property
    def evidence(self) -> Evidence:
        evidence: Evidence | None = self.memo.get(Evidence)
        if evidence is None:
            evidence = self.memo[Evidence] = Evidence(self.last, self.detection)
        return evidence

    def anchor(self, anchor: Anchor) -> XY:
        point: XY | None = self.memo.get(anchor)
        if point is None:
            point = self.memo[anchor] = anchor_point(self.box, anchor)
        return point

    def path(self, anchor: Anchor) -> list[XY]:
        return [anchor_point(b, anchor) for b in self.boxes]
