"""Event ids and the started -> updated -> ended lifecycle.

An event's id is a hash of (camera, rule, subject, start), where the subject
is the analyzer and track (or the zone, for crowding). For a recording (a
file: its frames carry a media origin) the start is the start frame's media
time, so analysing the same file with the same configuration again gives
the same ids, and the index and the EVENTS stream's duplicate window
(Nats-Msg-Id = id/state/revision) store nothing twice. For a live source it
is the start frame's seq and capture time, which tells apart two runs of a
camera whose frame numbers both start at 1. Replaying the same detections
rebuilds the same tracks either way, so a replay after a crash republishes
the same ids.

Event times are wall-clock times of what the pictures show
(:attr:`Frame.wall`), and every event carries its media position too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from camsight.behavior.geometry import XY
from camsight.behavior.model import Evidence, Frame
from camsight.v1 import analysis_pb2, event_pb2

STARTED = event_pb2.EVENT_STATE_STARTED
UPDATED = event_pb2.EVENT_STATE_UPDATED
ENDED = event_pb2.EVENT_STATE_ENDED


def event_id(camera: str, rule: str, subject: str, start: Frame) -> str:
    """A short, stable id: 20 hex digits of SHA-256 over what identifies the event."""
    if start.recorded:
        where = f"media\x00{start.media_ns}"
    else:
        where = f"{start.seq}\x00{start.ref.capture_time.ToNanoseconds()}"
    key = f"{camera}\x00{rule}\x00{subject}\x00{where}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """Snapshot candidates in order of preference (best score first, then the latest frame)."""

    event_id: str
    candidates: tuple[Evidence, ...]

    def name(self, candidate: Evidence) -> str:
        return f"{self.event_id}-{candidate.frame.seq}"


@dataclass(slots=True)
class Emission:
    """What the engine wants published: an event message, and/or a snapshot to keep.

    ``event`` is None when only a better snapshot was seen for an event
    already published: storing it now, while the frame is still retained,
    lets the next message of the event reference it.
    """

    event: event_pb2.Event | None
    snapshot: SnapshotRequest | None
    msg_id: str = ""
    """The event message's ``Nats-Msg-Id`` (the events stream stores one message per id within
    its duplicate window): id, state and revision, and the read time of the event's first
    frame. A replay after a crash re-reads the same frames and is stored once; reading a
    recording again is a new analysis, whose messages are stored and delivered again under
    the same event ids."""


@dataclass(slots=True)
class OpenEvent:
    """One event in its life: what identifies it, the best evidence, how many messages went out."""

    type: event_pb2.EventType.ValueType
    camera: str
    rule_id: str
    start: Frame
    subject: str
    track_id: int = 0
    label: str = ""
    zone_id: str = ""
    line_id: str = ""
    identity_id: str = ""
    identity_name: str = ""
    analyzer: str = ""
    direction: analysis_pb2.CrossingDirection.ValueType = analysis_pb2.CROSSING_DIRECTION_UNSPECIFIED
    thresholds: Mapping[str, str] = field(default_factory=dict)
    id: str = ""
    revision: int = 0
    best: Evidence | None = None
    last_published_t: float = 0.0
    dirty: bool = False
    """Something changed (better evidence, new attributes) since the last message."""

    def __post_init__(self) -> None:
        self.id = event_id(self.camera, self.rule_id, self.subject, self.start)

    @property
    def published(self) -> bool:
        return self.revision > 0

    def offer(self, evidence: Evidence) -> bool:
        """Keep the highest-scoring evidence; True when it improved."""
        if self.best is None or evidence.score > self.best.score:
            self.best = evidence
            self.dirty = True
            return True
        return False

    def offer_all(self, evidence: Iterable[Evidence]) -> Emission | None:
        """Offer this frame's evidence; once published, a better one is stored at once."""
        improved = False
        for ev in evidence:
            improved = self.offer(ev) or improved
        if improved and self.published and self.best is not None:
            return Emission(None, SnapshotRequest(self.id, (self.best,)))
        return None

    def due(self, frame: Frame, interval: float) -> bool:
        """An UPDATED message is due: something changed and ``interval`` of media time passed."""
        return self.published and self.dirty and frame.t - self.last_published_t >= interval

    def emit(
        self,
        state: event_pb2.EventState.ValueType,
        frame: Frame,
        summary: str,
        evidence: Sequence[Evidence],
        path: Sequence[XY] = (),
        attributes: Mapping[str, str] | None = None,
        end: Frame | None = None,
    ) -> Emission:
        """Build the next message of this event (revision + 1)."""
        for ev in evidence:
            self.offer(ev)
        self.revision += 1
        self.last_published_t = frame.t
        self.dirty = False
        best = self.best.detection.score if self.best else max((e.score for e in evidence), default=0.0)
        msg = event_pb2.Event(
            id=self.id,
            type=self.type,
            state=state,
            camera_id=self.camera,
            track_id=self.track_id,
            label=self.label,
            identity_id=self.identity_id,
            identity_name=self.identity_name,
            rule_id=self.rule_id,
            zone_id=self.zone_id,
            line_id=self.line_id,
            direction=self.direction,
            confidence=best,
            revision=self.revision,
            attributes=dict(attributes or {}),
            analyzer=self.analyzer,
            explanation=event_pb2.EventExplanation(
                summary=summary,
                thresholds=dict(self.thresholds),
                detections=[e.detection for e in evidence],
                path=[analysis_pb2.Point(x=x, y=y) for x, y in path],
            ),
        )
        msg.start_time.CopyFrom(self.start.wall)
        msg.start_media_time.CopyFrom(self.start.ref.media_time)
        if end is not None:
            msg.end_time.CopyFrom(end.wall)
            msg.end_media_time.CopyFrom(end.ref.media_time)
        msg.update_time.CopyFrom(frame.wall)
        candidates: dict[tuple[int, int], Evidence] = {}
        for c in (self.best, *evidence):
            if c is not None:
                candidates.setdefault((c.frame.seq, id(c.detection)), c)
        request = SnapshotRequest(self.id, tuple(candidates.values())) if candidates else None
        read_ns = self.start.ref.capture_time.ToNanoseconds()
        return Emission(
            msg, request, f"{self.id}/{event_pb2.EventState.Name(state)}/{self.revision}/{read_ns}"
        )
