"""Track-long events: object_detected, face_recognized, unknown_face.

Each opens once per track (face_recognized: once per track and identity),
is STARTED when it first fires, UPDATED at most every ``update_interval_s``
of media time when a better detection was seen, and ENDED when the tracker
drops the track. A face's identity is debounced like everything else: the
same answer ``hysteresis_frames`` frames in a row.
"""

from __future__ import annotations

from collections.abc import Sequence

from camsight.behavior.events import ENDED, STARTED, UPDATED, Emission, OpenEvent
from camsight.behavior.hysteresis import Debounced
from camsight.behavior.model import Frame, Track
from camsight.behavior.rules.base import RuleRunner
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import CameraConfig, Rule, RuleType
from camsight.v1 import analysis_pb2, event_pb2


def shown(event: OpenEvent, track: Track) -> analysis_pb2.Detection:
    """The detection a message's summary describes: the event's best evidence, which is also
    its confidence and its snapshot, not whatever the track's latest frame saw (when it ends,
    that may be a poor sighting, or a face the gallery did not match)."""
    return event.best.detection if event.best is not None else track.detection


class TrackEvents(RuleRunner):
    """Events that live as long as their track; subclasses decide when one opens."""

    def __init__(self, rule: Rule, camera: CameraConfig, settings: BehaviorSettings) -> None:
        super().__init__(rule, camera, settings)
        self.events: dict[str, list[OpenEvent]] = {}

    def describe(self, event: OpenEvent, track: Track) -> str:
        return f"{track.label} track {track.number} detected (score {shown(event, track).score:.2f})"

    def relevant(self, event: OpenEvent, track: Track) -> bool:
        """Whether this frame's detection is evidence for ``event``."""
        return True

    def start(self, event: OpenEvent, frame: Frame, track: Track) -> Emission:
        self.events.setdefault(track.key, []).append(event)
        return event.emit(
            STARTED, frame, self.describe(event, track), [track.evidence], track.path(self.rule.anchor)
        )

    def follow(self, frame: Frame, track: Track) -> list[Emission]:
        out = []
        for event in self.events.get(track.key, []):
            if not self.relevant(event, track):
                continue
            hint = event.offer_all([track.evidence])
            if event.due(frame, self.settings.update_interval_s):
                out.append(
                    event.emit(
                        UPDATED,
                        frame,
                        self.describe(event, track),
                        [track.evidence],
                        track.path(self.rule.anchor),
                    )
                )
            elif hint:
                out.append(hint)
        return out

    def lost(self, frame: Frame, track: Track) -> list[Emission]:
        out = []
        for event in self.events.pop(track.key, []):
            summary = self.describe(event, track) + f"; track lost after {track.last.t - event.start.t:.1f}s"
            duration = {"duration_s": f"{track.last.t - event.start.t:.3f}"}
            out.append(
                event.emit(ENDED, frame, summary, [], track.path(self.rule.anchor), duration, end=track.last)
            )
        return out

    def close(self, frame: Frame, reason: str) -> list[Emission]:
        out = []
        for events in self.events.values():
            for event in events:
                summary = f"ended: {reason}"
                out.append(event.emit(ENDED, frame, summary, [], end=frame))
        self.events.clear()
        return out


class ObjectDetected(TrackEvents):
    names = (RuleType.OBJECT_DETECTED,)

    def step(self, frame: Frame, seen: Sequence[Track], present: Sequence[Track]) -> list[Emission]:
        out = []
        for track in seen:
            if track.key in self.events:
                out.extend(self.follow(frame, track))
            elif self.accepts(track):
                event = self.open(event_pb2.EVENT_TYPE_OBJECT_DETECTED, track.first, str(track.number), track)
                out.append(self.start(event, frame, track))
        return out


class FaceIdentity(TrackEvents):
    """face_recognized (identity matched) or unknown_face (a face matched nobody)."""

    names = (RuleType.FACE_RECOGNIZED, RuleType.UNKNOWN_FACE)

    def __init__(self, rule: Rule, camera: CameraConfig, settings: BehaviorSettings) -> None:
        super().__init__(rule, camera, settings)
        self.recognized = rule.type is RuleType.FACE_RECOGNIZED
        self.identities: dict[str, Debounced[str]] = {}
        self.fired: set[tuple[str, str]] = set()

    def _identity(self, track: Track) -> str | None:
        """The gallery's answer in this frame: an identity id, "" for unknown, None for no answer."""
        det = track.detection
        if not det.HasField("identity"):
            return None
        return det.identity.identity_id if det.identity.matched and det.identity.identity_id else ""

    def describe(self, event: OpenEvent, track: Track) -> str:
        if self.recognized:
            who, distance = event.identity_name or event.identity_id, shown(event, track).identity.distance
            return f"face track {track.number} recognized as {who} (distance {distance:.3f})"
        return f"face track {track.number} matched nobody in the gallery"

    def relevant(self, event: OpenEvent, track: Track) -> bool:
        return self._identity(track) == event.identity_id

    def step(self, frame: Frame, seen: Sequence[Track], present: Sequence[Track]) -> list[Emission]:
        out = []
        for track in seen:
            out.extend(self.follow(frame, track))
            if not self.accepts(track):
                continue
            state = self.identities.get(track.key)
            if state is None:
                state = self.identities[track.key] = Debounced(self.rule.hysteresis_frames)
            change = state.observe(self._identity(track), track.last)
            if (
                change is None
                or (change.new != "") != self.recognized
                or (track.key, change.new) in self.fired
            ):
                continue
            self.fired.add((track.key, change.new))
            event = self.open(
                event_pb2.EVENT_TYPE_FACE_RECOGNIZED
                if self.recognized
                else event_pb2.EVENT_TYPE_UNKNOWN_FACE,
                change.since,
                f"{track.number}:{change.new}",
                track,
                identity_id=change.new,
                identity_name=track.detection.identity.display_name if self.recognized else "",
            )
            out.append(self.start(event, frame, track))
        return out

    def lost(self, frame: Frame, track: Track) -> list[Emission]:
        self.identities.pop(track.key, None)
        self.fired = {f for f in self.fired if f[0] != track.key}
        return super().lost(frame, track)
