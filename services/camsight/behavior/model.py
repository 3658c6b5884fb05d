"""The small value types the engine passes around: frames, tracks, evidence."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from camsight.behavior.geometry import XY, anchor_point
from camsight.cameras import Anchor
from camsight.v1 import analysis_pb2, frame_pb2

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Frame:
    """One processed result's frame: where it is in the stream and in time.

    ``t`` is media time in seconds (capture time when the decoder sent no
    media time): every duration a rule measures is a difference of ``t``, so
    tests are exact and a slow pipeline does not stretch a dwell time.
    """

    camera: str
    analyzer: str
    seq: int
    t: float
    ref: frame_pb2.FrameRef

    @classmethod
    def of(cls, result: analysis_pb2.AnalysisResult) -> Frame:
        ref = result.frame
        if ref.HasField("media_time"):
            t = ref.media_time.seconds + ref.media_time.nanos / 1e9
        else:
            t = ref.capture_time.seconds + ref.capture_time.nanos / 1e9
        return cls(ref.camera_id, result.analyzer, ref.seq, t, ref)


@dataclass(frozen=True, slots=True, eq=False)
class Evidence:
    """A detection in a frame: what fired an event, and a snapshot candidate."""

    frame: Frame
    detection: analysis_pb2.Detection

    @property
    def score(self) -> float:
        return self.detection.score


@dataclass(slots=True)
class Track:
    """A confirmed track: camera-wide ``number`` (Event.track_id) and its recent boxes."""

    number: int
    key: str
    label: str
    first: Frame
    last: Frame
    detection: analysis_pb2.Detection
    boxes: deque[Box] = field(default_factory=deque)
    memo: dict[Any, Any] = field(default_factory=dict)
    """Per-frame results shared by rules (anchor points, zone tests); cleared on every new box."""

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
