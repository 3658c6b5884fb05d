"""What every rule runner shares: filters, thresholds, how events are opened."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

from camsight.behavior.events import Emission, OpenEvent
from camsight.behavior.model import Frame, Track
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import CameraConfig, Rule
from camsight.v1 import event_pb2


class RuleRunner(abc.ABC):
    """One configured rule's state on one camera.

    The engine calls, for every result in frame order: :meth:`lost` for each
    track the tracker dropped, then :meth:`step` with the confirmed tracks
    seen in the frame (none for a skipped frame: time still advances) and
    all those present (seen, coasting through a dropout, or parked while
    stationary). A seen track's ``new`` sightings are what the rule has not
    observed yet: usually this frame's, and a just-confirmed track's whole
    history, so what happened while it was a candidate still counts.
    """

    names: ClassVar[tuple[str, ...]] = ()
    """The rule types this runner serves (its registration through the camsight_rules hook)."""

    def __init__(self, rule: Rule, camera: CameraConfig, settings: BehaviorSettings) -> None:
        self.rule = rule
        self.camera_id = camera.id
        self.settings = settings
        self.labels = frozenset(rule.labels)

    def accepts(self, track: Track) -> bool:
        """Label and score filters of the rule, on the track's detection in this frame."""
        return (
            not self.labels or track.label in self.labels
        ) and track.detection.score >= self.rule.min_score

    def thresholds(self) -> dict[str, str]:
        """The rule's thresholds as configured, for EventExplanation.thresholds."""
        r = self.rule
        out = {
            "labels": ",".join(r.labels) or "*",
            "min_score": f"{r.min_score:g}",
            "hysteresis_frames": str(r.hysteresis_frames),
            "debounce_s": f"{r.debounce_s:g}",
            "margin": f"{r.margin:g}",
            "anchor": r.anchor.value,
        }
        return out | self.extra_thresholds()

    def extra_thresholds(self) -> dict[str, str]:
        return {}

    def open(
        self,
        type_: event_pb2.EventType.ValueType,
        start: Frame,
        subject: str,
        track: Track | None,
        **fields: Any,
    ) -> OpenEvent:
        if track is not None:
            # Track numbers count per analyzer: the analyzer keeps two analyzers' ids apart.
            subject = f"{track.analyzer}/{subject}"
            fields = {"track_id": track.number, "label": track.label, "analyzer": track.analyzer} | fields
        return OpenEvent(
            type=type_,
            camera=self.camera_id,
            rule_id=self.rule.id,
            start=start,
            subject=subject,
            thresholds=self.thresholds(),
            **fields,
        )

    @abc.abstractmethod
    def step(self, frame: Frame, seen: Sequence[Track], present: Sequence[Track]) -> list[Emission]:
        """Advance to ``frame`` with the confirmed tracks seen in it and all those present."""

    def lost(self, frame: Frame, track: Track) -> list[Emission]:
        """The tracker dropped ``track`` (last seen at ``track.last``)."""
        return []

    def close(self, frame: Frame, reason: str) -> list[Emission]:
        """End what is open at ``frame``: the rule changed or went away, the camera was
        removed, or its source ended. ``reason`` says which, for the summaries."""
        return []
