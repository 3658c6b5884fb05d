"""A plugin's rule type (``camsight.analyzers.EventRule``) run as a rule runner.

The plugin sees only the public rule API: confirmed tracks passing the rule's
labels and score as ``TrackView`` s, in frame order. Each ``Finding`` it
returns becomes one instantaneous event (``EVENT_TYPE_CUSTOM``, ENDED, start
= end = this frame) about its track, with ``attributes["rule_type"]``; a
finding about a track not seen in this frame is a plugin error, logged and
dropped. A plugin that raises loses that frame's findings, not the service.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from camsight.analyzers.rules import EventRule, TrackView
from camsight.behavior.events import ENDED, Emission
from camsight.behavior.model import Frame, Track
from camsight.behavior.rules.base import RuleRunner
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import CameraConfig, Rule
from camsight.v1 import event_pb2

log = logging.getLogger(__name__)


class PluginRule(RuleRunner):
    def __init__(
        self, rule: Rule, camera: CameraConfig, settings: BehaviorSettings, impl: EventRule, plugin: str
    ) -> None:
        super().__init__(rule, camera, settings)
        self.impl = impl
        self.plugin = plugin

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
        out = []
        for finding in findings:
            track = tracks.get((finding.track.analyzer, finding.track.number))
            if track is None:
                log.error("rule %s (plugin %s) reported an unseen track", self.rule.id, self.plugin)
                continue
            event = self.open(event_pb2.EVENT_TYPE_CUSTOM, frame, str(track.number), track)
            attributes = {**finding.attributes, "rule_type": self.rule.type_name}
            path = track.path(self.rule.anchor)
            out.append(
                event.emit(ENDED, frame, finding.summary, [track.evidence], path, attributes, end=frame)
            )
        return out

    def lost(self, frame: Frame, track: Track) -> list[Emission]:
        try:
            self.impl.lost(self.view(track))
        except Exception as exc:
            log.error("rule %s (plugin %s) raised %s: %s", self.rule.id, self.plugin, type(exc).__name__, exc)
        return []
