"""line_cross: a track's anchor changes side of a counting line, with direction and counts.

The side is debounced like zone membership (``hysteresis_frames`` sightings
over ``debounce_s`` of media time, beyond ``margin`` from the line), and only
decided while the anchor is beside the segment (not past its ends), so
jitter on the line and walking around its end count nothing. A track that
is lost on the far side before the time ran out (it walked out of the
picture) has crossed. Each crossing
is one instantaneous event (ENDED, start = end = first frame on the new
side) carrying the rule's running counts; counts include both directions
even when the rule only reports one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from camsight.behavior.events import ENDED, Emission
from camsight.behavior.geometry import side_of_segment
from camsight.behavior.hysteresis import Change, Debounced
from camsight.behavior.model import Frame, Track
from camsight.behavior.rules.base import RuleRunner
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import CameraConfig, Direction, Rule, RuleType
from camsight.v1 import analysis_pb2, event_pb2


class LineCross(RuleRunner):
    names = (RuleType.LINE_CROSS,)

    def __init__(self, rule: Rule, camera: CameraConfig, settings: BehaviorSettings) -> None:
        super().__init__(rule, camera, settings)
        line = next(ln for ln in camera.lines if ln.id == rule.line)
        self.line_name = line.display_name or line.id
        self.a, self.b = (line.a.x, line.a.y), (line.b.x, line.b.y)
        self.in_side = 1 if line.in_side_right else -1
        self.sides: dict[str, Debounced[int]] = {}
        self.counts: Counter[tuple[str, str]] = Counter()

    def extra_thresholds(self) -> dict[str, str]:
        return {"direction": self.rule.direction.value}

    def step(self, frame: Frame, seen: Sequence[Track], present: Sequence[Track]) -> list[Emission]:
        out = []
        for track in seen:
            if not self.accepts(track):
                continue
            side = self.sides.get(track.key)
            if side is None:
                side = self.sides[track.key] = Debounced(self.rule.hysteresis_frames, self.rule.debounce_s)
            for sighting in track.new:
                where = side_of_segment(sighting.anchor(self.rule.anchor), self.a, self.b, self.rule.margin)
                out.extend(self._crossed(frame, track, side.observe(where, sighting.frame)))
        return out

    def _crossed(self, frame: Frame, track: Track, change: Change[int] | None) -> list[Emission]:
        if change is None or change.old is None:
            return []  # no change, or the first side this track was seen on
        direction = Direction.IN if change.new == self.in_side else Direction.OUT
        self.counts[(direction.value, "")] += 1
        self.counts[(direction.value, track.label)] += 1
        if self.rule.direction not in (Direction.BOTH, direction):
            return []
        event = self.open(
            event_pb2.EVENT_TYPE_LINE_CROSS,
            change.since,
            str(track.number),
            track,
            line_id=self.rule.line,
            direction=(
                analysis_pb2.CROSSING_DIRECTION_IN
                if direction is Direction.IN
                else analysis_pb2.CROSSING_DIRECTION_OUT
            ),
        )
        attributes = {
            "in_count": str(self.counts[("in", "")]),
            "out_count": str(self.counts[("out", "")]),
            "label_in_count": str(self.counts[("in", track.label)]),
            "label_out_count": str(self.counts[("out", track.label)]),
        }
        summary = (
            f"{track.label} track {track.number} crossed line {self.line_name} going {direction.value} "
            f"(in {attributes['in_count']}, out {attributes['out_count']})"
        )
        return [
            event.emit(
                ENDED,
                frame,
                summary,
                [track.evidence],
                track.path(self.rule.anchor),
                attributes,
                end=change.since,
            )
        ]

    def lost(self, frame: Frame, track: Track) -> list[Emission]:
        """A track that ends on the far side (held for the sightings count, not yet the
        time: it left the picture) has crossed."""
        side = self.sides.pop(track.key, None)
        return self._crossed(frame, track, side.settle()) if side is not None else []
