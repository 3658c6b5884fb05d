"""The rule plugin API: a rule type a plugin adds to the behavior service.

camsight tracks every analyzer's detections (one tracker per camera, analyzer
and label), confirms tracks, and calls each configured rule in frame order.
A plugin's rule type is an :class:`EventRule`: it is built once per camera
and rule with its validated :class:`RuleConfig`, sees the confirmed tracks
of each frame that pass the rule's ``labels`` and ``min_score`` as
:class:`TrackView` s, and answers with :class:`Finding` s about them, as
events of type ``EVENT_TYPE_CUSTOM`` with ``attributes["rule_type"]`` naming
the type. A finding without a ``key`` is one instantaneous event (state
ENDED, start = end = that frame). A finding with a ``key`` says that a
condition of its track holds now: the service makes one event of it, STARTED
when it first holds, UPDATED (rate-limited) while it is reported, ENDED when a
frame shows the track and the rule does not report it, or the track is lost.
The rule only says what holds; event ids, revisions, timing, snapshots and
publishing are the service's job. What the rule remembers between frames is
its own state; :meth:`EventRule.lost` says when a track is gone for good.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

XY = tuple[float, float]


class RuleConfig(BaseModel):
    """Base of a rule type's settings: the rule's ``config:`` mapping in the camera.

    Validated when the behavior service starts (and when a camera changes);
    unknown keys are errors, like everywhere in camsight's configuration.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class TrackView:
    """A confirmed track as a rule sees it at one frame (coordinates normalised to 0..1)."""

    analyzer: str
    label: str
    number: int
    """Per (camera, analyzer), from 1 in order of confirmation: with ``analyzer``, its identity."""
    box: tuple[float, float, float, float]
    """This frame's box (x1, y1, x2, y2)."""
    score: float
    path: tuple[XY, ...]
    """The anchor (bottom centre of the box) of its recent sightings, oldest first, this frame's last."""


@dataclass(frozen=True)
class Finding:
    """What the rule reports about ``track`` at this frame: an occurrence, or a condition that holds."""

    track: TrackView
    summary: str
    """One line for people (the event's explanation), e.g. "car track 3 drove the wrong way"."""
    attributes: Mapping[str, str] = field(default_factory=dict)
    key: str = ""
    """Empty: one instantaneous event. Otherwise the name of a condition of ``track`` that holds
    now (e.g. ``"wrong_way"``): one event per (track, key) lasts while the rule keeps reporting
    it, so the rule need not remember what it reported; its summary and attributes are the
    latest finding's."""


class EventRule(abc.ABC):
    """A rule type: declare ``name`` (the ``type:`` operators write) and ``Config``; implement
    :meth:`step`. One instance per camera and configured rule; calls come in frame order from
    one thread, so no locking is needed."""

    name: ClassVar[str]
    Config: ClassVar[type[RuleConfig]] = RuleConfig

    def __init__(self, config: RuleConfig) -> None:
        self.config = config

    @abc.abstractmethod
    def step(self, t: float, seen: Sequence[TrackView]) -> list[Finding]:
        """The confirmed tracks seen in the frame at media time ``t`` (seconds); what happened."""

    def lost(self, track: TrackView) -> None:
        """``track`` is gone (left, or unseen too long): forget what you kept about it."""
