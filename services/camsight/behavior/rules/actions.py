"""action: scene labels (a clip analyzer's whole-frame detections) become events.

A clip analyzer reports labels for a window of frames, on the frame that
completed the window; frames between windows come as skipped results. A
label is *reported* in an evaluation when a scene label of the rule's
labels scores at least ``min_score``. An action event starts at the first
evaluation that reports it (a single window is enough: a cut, a fall) and
ends once ``hysteresis_frames`` consecutive evaluations did not (skipped
frames are not evaluations, so the stride does not matter); its end time is
the last evaluation that reported it. One event per label and occurrence,
never merged with another label's or another analyzer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from camsight.behavior.events import ENDED, STARTED, UPDATED, Emission, Evidence, OpenEvent
from camsight.behavior.model import Frame, Track
from camsight.behavior.rules.base import RuleRunner
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import CameraConfig, Rule, RuleType
from camsight.v1 import event_pb2


@dataclass
class _Occurrence:
    event: OpenEvent
    last: Frame
    misses: int = 0


class ActionRule(RuleRunner):
    names = (RuleType.ACTION,)

    def __init__(self, rule: Rule, camera: CameraConfig, settings: BehaviorSettings) -> None:
        super().__init__(rule, camera, settings)
        self.open_actions: dict[tuple[str, str], _Occurrence] = {}

    def step(self, frame: Frame, seen: Sequence[Track], present: Sequence[Track]) -> list[Emission]:
        if frame.skipped:
            return []
        reported: dict[str, Evidence] = {}
        for det in frame.scene:
            if (not self.labels or det.label in self.labels) and det.score >= self.rule.min_score:
                best = reported.get(det.label)
                if best is None or det.score > best.score:
                    reported[det.label] = Evidence(frame, det)
        out: list[Emission] = []
        for label, evidence in sorted(reported.items()):
            key = (frame.analyzer, label)
            occurrence = self.open_actions.get(key)
            if occurrence is None:
                subject = f"{frame.analyzer}/{label}"
                event = self.open(
                    event_pb2.EVENT_TYPE_ACTION, frame, subject, None, analyzer=frame.analyzer, label=label
                )
                self.open_actions[key] = _Occurrence(event, frame)
                out.append(event.emit(STARTED, frame, self._summary(label, frame, frame), [evidence]))
                continue
            occurrence.last, occurrence.misses = frame, 0
            hint = occurrence.event.offer_all([evidence])
            occurrence.event.dirty = True  # its duration grew
            if occurrence.event.due(frame, self.settings.update_interval_s):
                summary = self._summary(label, occurrence.event.start, frame)
                out.append(occurrence.event.emit(UPDATED, frame, summary, [evidence]))
            elif hint:
                out.append(hint)
        for key, occurrence in list(self.open_actions.items()):
            if key[0] != frame.analyzer or key[1] in reported:
                continue
            occurrence.misses += 1
            if occurrence.misses >= self.rule.hysteresis_frames:
                del self.open_actions[key]
                out.append(self._end(occurrence, frame, "no longer reported"))
        return out

    def _summary(self, label: str, start: Frame, last: Frame) -> str:
        return f"action {label} reported for {last.t - start.t:.1f}s"

    def _end(self, occurrence: _Occurrence, frame: Frame, why: str) -> Emission:
        event = occurrence.event
        summary = f"{self._summary(event.label, event.start, occurrence.last)}; {why}"
        duration = {"duration_s": f"{occurrence.last.t - event.start.t:.3f}"}
        return event.emit(ENDED, frame, summary, [], attributes=duration, end=occurrence.last)

    def close(self, frame: Frame, reason: str) -> list[Emission]:
        out = [self._end(o, frame, reason) for o in self.open_actions.values()]
        self.open_actions.clear()
        return out
