"""Tracks that survive real detectors: ByteTrack, tuned and wrapped.

One :class:`StreamTracker` per (camera, analyzer); inside it one tracker per
label, so a person and a bicycle never swap ids and two analyzers reporting
the same label never share a track. The association itself is the
maintained ``trackers.ByteTrackTracker``, fed media timestamps so that its
lost-track budget is seconds, not frames. Around it, this module decides
what a rule may see:

- **Confirmation.** A new track is a candidate until it has been seen
  ``min_track_hits`` times over at least ``min_track_age_s`` of media time
  and the median of its scores reaches ``min_median_score`` (Frigate's
  rule). Candidates produce no events; when one is confirmed its earlier
  sightings are handed to the rules too, so a line crossed or a zone entered
  while it was a candidate still counts, at the frame it happened.
- **Dropouts.** A confirmed track that goes unseen *coasts* (still present
  for zones, dwell and counts) for ``max_lost_s``, placed (``Track.estimate``)
  at the motion model's prediction; one predicted out of the picture is lost
  at once, since it walked out.
- **Stationary objects.** Past ``max_lost_s`` a track is *parked* at its
  last box: for ``stationary_lost_s`` when its recent sightings hardly
  moved (it is *stationary*), else for another ``max_lost_s``. A new
  detection over a parked box (IoU >= ``park_iou``) continues the same
  track. This keeps one id for a person who walks in and stands still while
  a motion detector absorbs them into the background, or a sparse detector
  sees them one frame in two and the motion model overshoots when they stop.

Track numbers count per (camera, analyzer) in order of confirmation, which is
deterministic for a given input, so a replay or a re-analysed file gives the
same numbers and the same event ids.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from camsight.behavior.geometry import inside_share, iou
from camsight.behavior.kalman import DecoupledXYXYEstimator
from camsight.behavior.model import Frame, Sighting, Track, is_scene_label
from camsight.behavior.settings import BehaviorSettings
from camsight.v1 import analysis_pb2

INSIDE_STANDING = 0.5
"""A detection with at least this share of its box inside a parked stationary track's
standing place continues that track (a sliver of a person swaying in place)."""


BORDER = 0.01
"""A box this close to an edge of the picture (normalised) is leaving or entering it."""


def at_border(box: tuple[float, float, float, float]) -> bool:
    """The box touches an edge of the picture: its object may be walking out."""
    x1, y1, x2, y2 = box
    return x1 <= BORDER or y1 <= BORDER or x2 >= 1 - BORDER or y2 >= 1 - BORDER


@dataclass
class _Candidate:
    """A ByteTrack id not confirmed yet: its sightings, oldest first."""

    sightings: list[Sighting] = field(default_factory=list)


@dataclass
class TrackUpdate:
    """What one frame changed: confirmed tracks seen in it, all present ones, the lost ones."""

    seen: list[Track]
    present: list[Track]
    lost: list[Track]


class _LabelTracker:
    """One label's ByteTrack, its candidates and the confirmed tracks it feeds."""

    def __init__(self, settings: BehaviorSettings, fps: float) -> None:
        s = self.settings = settings
        self.bytetrack = ByteTrackTracker(
            lost_track_buffer=max(1, round(s.max_lost_s * 30)),  # 30 "frames" = 1 s in timestamp mode
            # Fed media timestamps, the Kalman filter predicts elapsed * frame_rate steps:
            # the stream's own rate keeps that one step per frame, as its noise model expects.
            frame_rate=fps,
            track_activation_threshold=s.track_activation_threshold,
            # The library's own rule to start a tracklet: two matches in a row. A
            # single detection that is not matched next time is clutter; once
            # started, a tracklet lives through misses for the lost-track budget.
            minimum_consecutive_frames=2,
            minimum_iou_threshold=s.min_iou,
            high_conf_det_threshold=s.high_score_threshold,
            state_estimator_class=DecoupledXYXYEstimator,  # the library's filter, 4x cheaper
        )
        self.candidates: dict[int, _Candidate] = {}
        self.tracks: dict[int, Track] = {}  # ByteTrack id -> confirmed track
        self.parked: list[Track] = []

    def update(self, sightings: list[Sighting], frame: Frame) -> list[tuple[int, Sighting]]:
        """Associate this frame's sightings; returns (ByteTrack id, sighting) pairs."""
        if sightings:
            xyxy = np.array([s.box for s in sightings], dtype=np.float64)
            scores = np.array([s.detection.score for s in sightings], dtype=np.float64)
            dets = sv.Detections(xyxy=xyxy, confidence=scores, data={"i": np.arange(len(sightings))})
        else:
            dets = sv.Detections.empty()
            dets.data["i"] = np.empty(0, dtype=int)
        result = self.bytetrack.update(dets, timestamp=frame.t)
        ids = result.tracker_id if result.tracker_id is not None else ()
        return [
            (int(tid), sightings[int(i)])
            for i, tid in zip(result.data.get("i", ()), ids, strict=True)
            if tid >= 0
        ]

    def forget_candidates(self, alive: set[int]) -> None:
        """Drop candidates whose ByteTrack id the library no longer holds (never confirmed)."""
        for tid in [t for t in self.candidates if t not in alive]:
            del self.candidates[tid]


class StreamTracker:
    """Tracks of one (camera, analyzer)."""

    def __init__(self, settings: BehaviorSettings, analyzer: str) -> None:
        self.settings = settings
        self.analyzer = analyzer
        self._labels: dict[str, _LabelTracker] = {}
        self.tracks: dict[str, Track] = {}
        """Confirmed tracks present (seen, coasting or parked), by key."""
        self._numbers = 0
        self._last_t: float | None = None
        self._intervals: deque[float] = deque(maxlen=15)

    @property
    def confirmed(self) -> int:
        """Tracks confirmed so far (the last track number given)."""
        return self._numbers

    @property
    def fps(self) -> float:
        """The stream's frame rate, from the median interval of recent media times (10 until known)."""
        steps = sorted(i for i in self._intervals if i > 0)
        return min(120.0, 1.0 / steps[len(steps) // 2]) if steps else 10.0

    def update(
        self, frame: Frame, detections: Iterable[analysis_pb2.Detection], labels: frozenset[str] | None = None
    ) -> TrackUpdate:
        """Track one frame's detections.

        Only ``labels`` are tracked (None: every label): no rule of the camera
        looks at the others, and tracking is most of the service's CPU time.
        A label no longer wanted has its tracks reported lost.
        """
        if self._last_t is not None:
            self._intervals.append(frame.t - self._last_t)
        self._last_t = frame.t
        by_label: dict[str, list[Sighting]] = {label: [] for label in self._labels}
        for det in detections:
            if (labels is None or det.label in labels) and not is_scene_label(det):
                by_label.setdefault(det.label, []).append(Sighting.of(frame, det))
        lost: list[Track] = []
        if labels is not None:
            for label in [label for label in self._labels if label not in labels]:
                gone = self._labels.pop(label)
                lost.extend([*gone.tracks.values(), *gone.parked])
                del by_label[label]
        seen: list[Track] = []
        for label, sightings in by_label.items():
            lt = self._labels.get(label)
            if lt is None:
                lt = self._labels[label] = _LabelTracker(self.settings, self.fps)
            matched = lt.update(sightings, frame)
            alive = {t.tracker_id for t in lt.bytetrack.tracks}
            seen.extend(self._associate(lt, label, matched))
            lost.extend(self._expire(lt, frame, alive))
            lost.extend(self._place(lt, frame))
            lt.forget_candidates(alive)
        for track in lost:
            self.tracks.pop(track.key, None)
        return TrackUpdate(seen, list(self.tracks.values()), lost)

    def _associate(self, lt: _LabelTracker, label: str, matched: list[tuple[int, Sighting]]) -> list[Track]:
        seen = []
        for tid, sighting in matched:
            track = lt.tracks.get(tid)
            if track is None:
                track = self._resume(lt, tid, sighting)
            if track is None:
                candidate = lt.candidates.setdefault(tid, _Candidate())
                candidate.sightings.append(sighting)
                if not self._confirmed(candidate) or self._part_of_standing(lt, sighting):
                    continue
                del lt.candidates[tid]
                track = self._confirm(lt, tid, label, candidate)
            else:
                track.see(sighting)
            seen.append(track)
        return seen

    def _resume(self, lt: _LabelTracker, tid: int, sighting: Sighting) -> Track | None:
        """A new ByteTrack id over the last box of a parked or coasting track continues that track.

        Coasting counts too: ByteTrack's motion model extrapolates a track
        unseen for a while, and after a stop it can drift off the object, so
        the library starts a new tracklet on the very spot the track was
        last seen.
        """
        coasting = {id(t): k for k, t in lt.tracks.items() if t.last.t < sighting.frame.t}
        best, best_iou = None, self.settings.park_iou
        for track in [*lt.parked, *(lt.tracks[k] for k in coasting.values())]:
            overlap = iou(track.box, sighting.box)
            if track.standing is not None and inside_share(sighting.box, track.standing) >= INSIDE_STANDING:
                overlap = max(overlap, 1.0 - 1e-9)  # part of where it stood: the same object
            if overlap >= best_iou:
                best, best_iou = track, overlap
        if best is None:
            return None
        if id(best) in coasting:
            old = coasting[id(best)]
            del lt.tracks[old]
            lt.bytetrack.tracks = [t for t in lt.bytetrack.tracks if t.tracker_id != old]
        else:
            lt.parked.remove(best)
        lt.tracks[tid] = best
        best.parked_until = None
        best.standing = None
        candidate = lt.candidates.pop(tid, None)
        for earlier in candidate.sightings if candidate else ():
            best.see(earlier)
        best.see(sighting)
        return best

    def _part_of_standing(self, lt: _LabelTracker, sighting: Sighting) -> bool:
        """The sighting lies within where a confirmed track stands still: a second blob of the
        same object (a motion detector's slivers of a person swaying in place), not a new one.
        It is confirmed once it leaves that place, with its earlier sightings."""
        s = self.settings
        return any(
            inside_share(sighting.box, track.standing_place(s.stationary_window_s)) >= INSIDE_STANDING
            for track in lt.tracks.values()
            if not at_border(track.box) and track.stationary(s.stationary_speed, s.stationary_window_s)
        )

    def _confirmed(self, candidate: _Candidate) -> bool:
        s, sightings = self.settings, candidate.sightings
        return (
            len(sightings) >= s.min_track_hits
            and sightings[-1].frame.t - sightings[0].frame.t >= s.min_track_age_s
            and statistics.median(x.detection.score for x in sightings) >= s.min_median_score
        )

    def _confirm(self, lt: _LabelTracker, tid: int, label: str, candidate: _Candidate) -> Track:
        self._numbers += 1
        first = candidate.sightings[0]
        track = Track(
            number=self._numbers,
            key=f"{self.analyzer}/{label}/{self._numbers}",
            label=label,
            analyzer=self.analyzer,
            first=first.frame,
            last=first.frame,
            detection=first.detection,
            boxes=deque(maxlen=self.settings.path_points),
        )
        for sighting in candidate.sightings:
            track.see(sighting)
        lt.tracks[tid] = track
        self.tracks[track.key] = track
        return track

    def _expire(self, lt: _LabelTracker, frame: Frame, alive: set[int]) -> list[Track]:
        """Tracks unseen for too long: parked when stationary, else lost; parked ones time out."""
        s = self.settings
        lost = []
        for tid, track in list(lt.tracks.items()):
            if frame.t - track.last.t <= s.max_lost_s and tid in alive:
                continue
            del lt.tracks[tid]
            lt.bytetrack.tracks = [t for t in lt.bytetrack.tracks if t.tracker_id != tid]
            stationary = not at_border(track.box) and track.stationary(
                s.stationary_speed, s.stationary_window_s
            )
            track.parked_until = track.last.t + (s.stationary_lost_s if stationary else 2 * s.max_lost_s)
            track.estimate = track.box if stationary else None
            track.standing = track.standing_place(s.stationary_window_s) if stationary else None
            lt.parked.append(track)
        for track in list(lt.parked):
            if track.parked_until is not None and frame.t > track.parked_until:
                lt.parked.remove(track)
                lost.append(track)
        return lost

    def _place(self, lt: _LabelTracker, frame: Frame) -> list[Track]:
        """Place coasting tracks at their motion model's prediction (a stationary one at its last
        box); a moving one predicted out of the picture is lost.

        An object that walks out of the picture is gone: coasting and parking
        it at the border for seconds would only keep it present for zones and
        counts after it left, and end its events late.
        """
        states = {t.tracker_id: t for t in lt.bytetrack.tracks}
        lost = []
        for tid, track in list(lt.tracks.items()):
            tracklet = states.get(tid)
            if track.last.t >= frame.t or tracklet is None:
                continue
            x1, y1, x2, y2 = (float(v) for v in tracklet.get_state_bbox()[:4])
            out = not (0.0 <= (x1 + x2) / 2 <= 1.0 and 0.0 <= (y1 + y2) / 2 <= 1.0)
            if not at_border(track.box) and track.stationary(
                self.settings.stationary_speed, self.settings.stationary_window_s
            ):
                # Standing inside the picture: the motion model only extrapolates the jitter
                # of partial boxes (a sliver at the feet, then one at the head).
                track.estimate = track.box
                continue
            track.estimate = (x1, y1, x2, y2)
            if out:
                del lt.tracks[tid]
                lt.bytetrack.tracks = [t for t in lt.bytetrack.tracks if t.tracker_id != tid]
                lost.append(track)
        return lost

    def reset(self, renumber: bool) -> list[Track]:
        """Forget every track (the source restarted or ended); returns those that were present.

        ``renumber`` starts the numbers again at 1: a recording read again from
        its start must give the same numbers, hence the same event ids (which
        the query index then keeps once). A live camera keeps counting, so that
        one number means one object for that camera."""
        present = list(self.tracks.values())
        self._labels.clear()
        self.tracks.clear()
        if renumber:
            self._numbers = 0
        return present
