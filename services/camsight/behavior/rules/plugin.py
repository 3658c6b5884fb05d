"""A plugin's rule type (``camsight.analyzers.EventRule``) run as a rule runner.

The plugin sees only the public rule API: confirmed tracks passing the rule's
labels and score as ``TrackView`` s, in frame order. A ``Finding`` without a
key becomes one instantaneous event (``EVENT_TYPE_CUSTOM``, ENDED, start =
end = this frame) about its track, with ``attributes["rule_type"]``. A finding
with a key names a condition of its track that holds now; this runner owns
its event's life like the built-ins' (docs/rules.md "Event lifecycle and
ids"): STARTED on the first frame reporting it, UPDATED at most every
``update_interval_s`` while a better detection, summary or attribute came,
ENDED (end = the last frame reporting it) at the first frame that shows the
track to the plugin without it, when the track is lost, or when the rule
closes. A frame where the track is not shown (unseen, or under the rule's
filters) says nothing, so the condition goes on. A finding about a track not
seen in this frame is a plugin error, logged and dropped. A plugin that
raises loses that frame's findings, not the service.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from camsight.analyzers.rules import EventRule, Finding, TrackView
from camsight.behavior.events import ENDED, STARTED, UPDATED, Emission, OpenEvent
from camsight.behavior.model import Frame, Track
from camsight.behavior.rules.base import RuleRunner
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import CameraConfig, Rule
from camsight.v1 import event_pb2

log = logging.getLogger(__name__)

TrackId = tuple[str, int]
"""A track's identity on the camera: (analyzer, number)."""


@dataclass(slots=True)
class Condition:
    """A keyed finding's open event and what its next message says (checkpointed with the runner)."""

    event: OpenEvent
    summary: str
    attributes: Mapping[str, str]
    last: Frame
    """The last frame that reported it: the event's end."""


class PluginRule(RuleRunner):
    def __init__(
        self, rule: Rule, camera: CameraConfig, settings: BehaviorSettings, impl: EventRule, plugin: str
    ) -> None:
        super().__init__(rule, camera, settings)
        self.impl = impl
        self.plugin = plugin
        self.conditions: dict[tuple[TrackId, str], Condition] = {}

    def extra_thresholds(self) -> dict[str, str]:
        return {"rule_type": self.rule.type_name} | {
            key: str(value) for key, value in self.impl.config.model_dump().items()
        }

    def view(self, track: Track) -> TrackView:
        box = track.box
        return TrackView(
            track.analyzer,
            track.label,
            track.number,
            (box[0], box[1], box[2], box[3]),
            track.detection.score,
            tuple(track.path(self.rule.anchor)),
        )

    def step(self, frame: Frame, seen: Sequence[Track], present: Sequence[Track]) -> list[Emission]:
        tracks = {(t.analyzer, t.number): t for t in seen if self.accepts(t)}
        if not tracks:
            return []
        try:
            findings = self.impl.step(frame.t, [self.view(t) for t in tracks.values()])
        except Exception as exc:
            log.error("rule %s (plugin %s) raised %s: %s", self.rule.id, self.plugin, type(exc).__name__, exc)
            return []
        out: list[Emission] = []
        held: set[tuple[TrackId, str]] = set()
        for finding in findings:
            track = tracks.get((finding.track.analyzer, finding.track.number))
            if track is None:
                log.error("rule %s (plugin %s) reported an unseen track", self.rule.id, self.plugin)
            elif not finding.key:
                event = self.open(event_pb2.EVENT_TYPE_CUSTOM, frame, str(track.number), track)
                attributes = self.attributes(finding)
                path = track.path(self.rule.anchor)
                out.append(
                    event.emit(ENDED, frame, finding.summary, [track.evidence], path, attributes, end=frame)
                )
            elif ((track.analyzer, track.number), finding.key) not in held:
                held.add(((track.analyzer, track.number), finding.key))
                out.extend(self.hold(frame, track, finding))
        for name in [n for n in self.conditions if n[0] in tracks and n not in held]:
            out.append(self.end(name, frame, "no longer reported", tracks[name[0]]))
        return out

    def attributes(self, finding: Finding) -> dict[str, str]:
        return {**finding.attributes, "rule_type": self.rule.type_name}

    def hold(self, frame: Frame, track: Track, finding: Finding) -> list[Emission]:
        """A keyed finding at ``frame``: start its event, or follow it (UPDATED when due)."""
        name = ((track.analyzer, track.number), finding.key)
        attributes = self.attributes(finding)
        path = track.path(self.rule.anchor)
        condition = self.conditions.get(name)
        if condition is None:
            event = self.open(event_pb2.EVENT_TYPE_CUSTOM, frame, f"{track.number}/{finding.key}", track)
            self.conditions[name] = Condition(event, finding.summary, attributes, frame)
            return [event.emit(STARTED, frame, finding.summary, [track.evidence], path, attributes)]
        event = condition.event
        hint = event.offer_all([track.evidence])
        if (finding.summary, attributes) != (condition.summary, condition.attributes):
            event.dirty = True
        condition.summary, condition.attributes, condition.last = finding.summary, attributes, frame
        if event.due(frame, self.settings.update_interval_s):
            return [event.emit(UPDATED, frame, finding.summary, [track.evidence], path, attributes)]
        return [hint] if hint else []

    def end(self, name: tuple[TrackId, str], frame: Frame, why: str, track: Track | None) -> Emission:
        condition = self.conditions.pop(name)
        held = condition.last.t - condition.event.start.t
        summary = f"{condition.summary}; {why} after {held:.1f}s"
        attributes = {**condition.attributes, "duration_s": f"{held:.3f}"}
        path = track.path(self.rule.anchor) if track is not None else ()
        return condition.event.emit(ENDED, frame, summary, [], path, attributes, end=condition.last)

    def lost(self, frame: Frame, track: Track) -> list[Emission]:
        try:
            self.impl.lost(self.view(track))
        except Exception as exc:
            log.error("rule %s (plugin %s) raised %s: %s", self.rule.id, self.plugin, type(exc).__name__, exc)
        gone = [n for n in self.conditions if n[0] == (track.analyzer, track.number)]
        return [self.end(name, frame, "track lost", track) for name in gone]

    def close(self, frame: Frame, reason: str) -> list[Emission]:
        return [self.end(name, frame, reason, None) for name in list(self.conditions)]
