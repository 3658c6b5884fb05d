"""Zone rules: zone_enter, zone_exit, loitering (dwell) and crowding (count over time).

All four share :class:`ZoneMembership`: a track is inside a zone when its
anchor point was in the polygon (beyond ``margin`` from its edge) for
``hysteresis_frames`` consecutive sightings spanning at least
``debounce_s`` of media time (and outside likewise), so a box flickering on
the edge never flips it. Times are those of the first sighting of the run
that changed the state. A track that coasts or is parked (unseen, see
:mod:`camsight.behavior.tracking`) keeps its state: it is still in the zone
and still counts for crowding; its dwell goes on while it is parked standing
(:class:`Loitering` says why not while it merely coasts).
"""

from __future__ import annotations

from collections.abc import Sequence

from camsight.behavior.events import ENDED, STARTED, UPDATED, Emission, OpenEvent
from camsight.behavior.geometry import XY, zone_side
from camsight.behavior.hysteresis import Change, Debounced
from camsight.behavior.model import Frame, Track
from camsight.behavior.rules.base import RuleRunner
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import Anchor, CameraConfig, Rule, RuleType
from camsight.v1 import event_pb2


class ZoneMembership:
    """Debounced inside/outside state of each track for one polygon."""

    def __init__(self, zone_id: str, polygon: Sequence[XY], rule: Rule) -> None:
        self.zone_id = zone_id
        self.polygon = list(polygon)
        self.frames, self.seconds, self.margin = rule.hysteresis_frames, rule.debounce_s, rule.margin
        self._states: dict[str, Debounced[bool]] = {}

    def observe(self, track: Track, anchor: Anchor) -> list[Change[bool]]:
        """Feed the track's new sightings; returns the changes they made, oldest first."""
        state = self._states.get(track.key)
        if state is None:
            state = self._states[track.key] = Debounced(self.frames, self.seconds)
        out = []
        for sighting in track.new:
            change = state.observe(
                zone_side(sighting.anchor(anchor), self.polygon, self.margin), sighting.frame
            )
            if change is not None:
                out.append(change)
        return out

    def inside(self, key: str) -> bool:
        state = self._states.get(key)
        return bool(state and state.state)

    def count(self) -> int:
        return sum(1 for s in self._states.values() if s.state)

    def forget(self, key: str) -> Change[bool] | None:
        """The track is gone: drop its state; returns the change it was making, if it had
        held for the sightings count (it walked out of the picture before the time ran out)."""
        state = self._states.pop(key, None)
        return state.settle() if state is not None else None


class ZoneRule(RuleRunner):
    def __init__(self, rule: Rule, camera: CameraConfig, settings: BehaviorSettings) -> None:
        super().__init__(rule, camera, settings)
        zone = next(z for z in camera.zones if z.id == rule.zone)
        self.zone_name = zone.display_name or zone.id
        self.members = ZoneMembership(zone.id, [(p.x, p.y) for p in zone.polygon], rule)

    def changes(self, tracks: Sequence[Track]) -> list[tuple[Track, Change[bool]]]:
        out: list[tuple[Track, Change[bool]]] = []
        for track in tracks:
            if self.accepts(track):
                out.extend((track, change) for change in self.members.observe(track, self.rule.anchor))
        return out

    def lost(self, frame: Frame, track: Track) -> list[Emission]:
        self.members.forget(track.key)
        return []


class ZoneCrossing(ZoneRule):
    """zone_enter / zone_exit: one instantaneous event per confirmed change.

    A track whose first established state is inside counts as entering (it
    appeared in the zone); a track lost while inside does not exit, but one
    lost after it was seen outside for ``hysteresis_frames`` sightings (not
    yet for ``debounce_s``: it walked out of the picture) does.
    """

    names = (RuleType.ZONE_ENTER, RuleType.ZONE_EXIT)

    def step(self, frame: Frame, seen: Sequence[Track], present: Sequence[Track]) -> list[Emission]:
        out = []
        for track, change in self.changes(seen):
            emission = self._event(frame, track, change)
            if emission is not None:
                out.append(emission)
        return out

    def lost(self, frame: Frame, track: Track) -> list[Emission]:
        change = self.members.forget(track.key)
        emission = self._event(frame, track, change) if change is not None else None
        return [emission] if emission is not None else []

    def _event(self, frame: Frame, track: Track, change: Change[bool]) -> Emission | None:
        if self.rule.type is RuleType.ZONE_ENTER and change.new:
            verb, type_ = "entered", event_pb2.EVENT_TYPE_ZONE_ENTER
        elif self.rule.type is RuleType.ZONE_EXIT and change.old and not change.new:
            verb, type_ = "left", event_pb2.EVENT_TYPE_ZONE_EXIT
        else:
            return None
        event = self.open(type_, change.since, str(track.number), track, zone_id=self.rule.zone)
        held = f"held {self.rule.debounce_s:g}s"
        summary = f"{track.label} track {track.number} {verb} zone {self.zone_name} ({held})"
        return event.emit(
            ENDED, frame, summary, [track.evidence], track.path(self.rule.anchor), end=change.since
        )


class Loitering(ZoneRule):
    """A track inside the zone for at least ``duration_s``: started when the dwell
    is reached (start time = entry), ended when it leaves or is lost.

    The dwell runs to the newest frame while the track is seen or parked standing
    (a person a motion detector absorbed is still there), but only to its last
    sighting while it merely coasts: a walker unseen for a second may have left,
    and starting on that second would publish a loitering whose dwell, ended at
    the last sighting, is under ``duration_s``. An event that did start (on a
    parked track) never ends before the frame that reached the dwell.
    """

    names = (RuleType.LOITERING,)

    def __init__(self, rule: Rule, camera: CameraConfig, settings: BehaviorSettings) -> None:
        super().__init__(rule, camera, settings)
        self.visits: dict[str, OpenEvent] = {}
        self.reached: dict[str, Frame] = {}
        """The frame each started visit reached ``duration_s`` at."""

    def __setstate__(self, state: dict[str, object]) -> None:
        # Checkpoints (decision 0048) taken before ``reached`` existed restore without it.
        self.__dict__.update(state)
        self.__dict__.setdefault("reached", {})

    def extra_thresholds(self) -> dict[str, str]:
        return {"duration_s": f"{self.rule.duration_s:g}"}

    def step(self, frame: Frame, seen: Sequence[Track], present: Sequence[Track]) -> list[Emission]:
        out: list[Emission] = []
        for track, change in self.changes(seen):
            if change.new:
                self.visits[track.key] = self.open(
                    event_pb2.EVENT_TYPE_LOITERING,
                    change.since,
                    str(track.number),
                    track,
                    zone_id=self.rule.zone,
                )
            else:
                visit = self.visits.pop(track.key, None)
                if visit is not None and visit.published:
                    out.append(self._emit(visit, ENDED, frame, track, self._left(track, change.since)))
        for track in present:  # dwell goes on while a track coasts or is parked
            visit = self.visits.get(track.key)
            if visit is None or not self.members.inside(track.key):
                continue
            hint = visit.offer_all([track.evidence])
            if not visit.published:
                until = frame if track.last.t >= frame.t or track.standing is not None else track.last
                if until.t - visit.start.t >= self.rule.duration_s:
                    self.reached[track.key] = frame
                    out.append(self._emit(visit, STARTED, frame, track))
                continue
            visit.dirty = True  # the dwell time grew
            if visit.due(frame, self.settings.update_interval_s):
                out.append(self._emit(visit, UPDATED, frame, track))
            elif hint:
                out.append(hint)
        return out

    def _emit(
        self,
        visit: OpenEvent,
        state: event_pb2.EventState.ValueType,
        frame: Frame,
        track: Track,
        end: Frame | None = None,
    ) -> Emission:
        dwell = (end or frame).t - visit.start.t
        summary = (
            f"{track.label} track {track.number} stayed {dwell:.1f}s in zone {self.zone_name} "
            f"(>= {self.rule.duration_s:g}s)"
        )
        return visit.emit(
            state,
            frame,
            summary,
            [track.evidence],
            track.path(self.rule.anchor),
            {"dwell_s": f"{dwell:.3f}"},
            end=end,
        )

    def _left(self, track: Track, left: Frame) -> Frame:
        """When a started visit ended: ``left``, but not before the dwell was reached."""
        reached = self.reached.pop(track.key, left)
        return reached if reached.t > left.t else left

    def lost(self, frame: Frame, track: Track) -> list[Emission]:
        change = self.members.forget(track.key)
        visit = self.visits.pop(track.key, None)
        if visit is None or not visit.published:
            return []
        left = change.since if change is not None and not change.new else track.last
        return [self._emit(visit, ENDED, frame, track, end=self._left(track, left))]

    def close(self, frame: Frame, reason: str) -> list[Emission]:
        out = []
        for visit in self.visits.values():
            if visit.published:
                summary = f"loitering in zone {self.zone_name} ended: {reason}"
                out.append(visit.emit(ENDED, frame, summary, [], end=frame))
        self.visits.clear()
        self.reached.clear()
        return out


class Crowding(ZoneRule):
    """At least ``min_count`` tracks inside for at least ``duration_s``.

    Starts (start time = when the count was first reached) once the duration
    is reached; ends at the first frame the count falls below ``min_count``.
    """

    names = (RuleType.CROWDING,)

    def __init__(self, rule: Rule, camera: CameraConfig, settings: BehaviorSettings) -> None:
        super().__init__(rule, camera, settings)
        self.crowd: OpenEvent | None = None
        self.peak = 0
        self._lost_since: Frame | None = None

    def extra_thresholds(self) -> dict[str, str]:
        return {"min_count": str(self.rule.min_count), "duration_s": f"{self.rule.duration_s:g}"}

    def lost(self, frame: Frame, track: Track) -> list[Emission]:
        if self.members.inside(track.key):
            self._lost_since = frame
        return super().lost(frame, track)

    def step(self, frame: Frame, seen: Sequence[Track], present: Sequence[Track]) -> list[Emission]:
        changes = self.changes(seen)
        # The count changed at the first frame of the run that changed it.
        when = max((c.since for _, c in changes), key=lambda f: f.t, default=self._lost_since or frame)
        self._lost_since = None
        count = self.members.count()
        inside = [t for t in seen if self.members.inside(t.key)]
        crowd = self.crowd
        if count < self.rule.min_count:
            self.crowd = None
            if crowd is not None and crowd.published:
                return [self._emit(crowd, ENDED, frame, inside, count, end=when)]
            return []
        if crowd is None:
            crowd = self.crowd = self.open(
                event_pb2.EVENT_TYPE_CROWDING, when, f"zone:{self.rule.zone}", None, zone_id=self.rule.zone
            )
            self.peak = count
        hint = crowd.offer_all(t.evidence for t in inside)
        if not crowd.published:
            if frame.t - crowd.start.t >= self.rule.duration_s:
                return [self._emit(crowd, STARTED, frame, inside, count)]
            return []
        if count != self.peak:
            self.peak = max(self.peak, count)
            crowd.dirty = True
        if crowd.due(frame, self.settings.update_interval_s):
            return [self._emit(crowd, UPDATED, frame, inside, count)]
        return [hint] if hint else []

    def _emit(
        self,
        crowd: OpenEvent,
        state: event_pb2.EventState.ValueType,
        frame: Frame,
        inside: Sequence[Track],
        count: int,
        end: Frame | None = None,
    ) -> Emission:
        summary = (
            f"{count} objects in zone {self.zone_name} (>= {self.rule.min_count} "
            f"for >= {self.rule.duration_s:g}s, peak {self.peak})"
        )
        attributes = {
            "count": str(count),
            "peak_count": str(self.peak),
            "duration_s": f"{(end or frame).t - crowd.start.t:.3f}",
        }
        return crowd.emit(state, frame, summary, [t.evidence for t in inside], (), attributes, end=end)

    def close(self, frame: Frame, reason: str) -> list[Emission]:
        crowd, self.crowd = self.crowd, None
        if crowd is None or not crowd.published:
            return []
        return [self._emit(crowd, ENDED, frame, [], self.members.count(), end=frame)]
