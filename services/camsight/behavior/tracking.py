"""Per-label multi-object tracking with the maintained ByteTrack of ``trackers``.

One :class:`StreamTracker` per (camera, analyzer); inside it one
``ByteTrackTracker`` per label, so a person and a bicycle never swap ids.
ByteTrack reports tracks it has not confirmed yet (fewer than
``min_track_frames`` consecutive matches) with id -1: those are dropped here,
so no rule ever sees them. Confirmed tracks get a camera-wide number in the
order they are confirmed, which is deterministic for a given input, so a
replay gives the same numbers and the same event ids.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from camsight.behavior.model import Box, Frame, Track
from camsight.behavior.settings import BehaviorSettings
from camsight.v1 import analysis_pb2


@dataclass
class TrackUpdate:
    seen: list[Track]
    lost: list[Track]


class StreamTracker:
    def __init__(self, settings: BehaviorSettings, numbers: Callable[[], int]) -> None:
        self.settings = settings
        self._numbers = numbers
        self._trackers: dict[str, ByteTrackTracker] = {}
        self.tracks: dict[str, Track] = {}

    def _tracker(self, label: str) -> ByteTrackTracker:
        tracker = self._trackers.get(label)
        if tracker is None:
            s = self.settings
            tracker = ByteTrackTracker(
                lost_track_buffer=s.track_buffer,
                frame_rate=30.0,  # makes lost_track_buffer a number of frames
                track_activation_threshold=s.track_activation_threshold,
                minimum_consecutive_frames=s.min_track_frames,
                minimum_iou_threshold=s.min_iou,
                high_conf_det_threshold=s.high_score_threshold,
            )
            self._trackers[label] = tracker
        return tracker

    def update(
        self, frame: Frame, detections: list[analysis_pb2.Detection], labels: frozenset[str] | None = None
    ) -> TrackUpdate:
        """Track one frame's detections; returns confirmed tracks seen and tracks lost.

        Only ``labels`` are tracked (None: every label): no rule of the camera
        looks at the others, and tracking is most of the service's CPU time.
        A label no longer wanted has its tracks reported lost.
        """
        if labels is not None:
            for label in [label for label in self._trackers if label not in labels]:
                del self._trackers[label]
        by_label: dict[str, list[int]] = {label: [] for label in self._trackers}
        for i, det in enumerate(detections):
            if labels is None or det.label in labels:
                by_label.setdefault(det.label, []).append(i)
        seen: list[Track] = []
        alive: set[str] = set()
        for label, indices in by_label.items():
            tracker = self._tracker(label)
            result = tracker.update(_to_sv(detections, indices))
            ids = result.tracker_id if result.tracker_id is not None else ()
            for index, tracker_id in zip(result.data.get("index", ()), ids, strict=True):
                if tracker_id < 0:
                    continue  # unconfirmed: never an event
                seen.append(self._observe(frame, label, int(tracker_id), detections[int(index)]))
            alive.update(f"{label}/{t.tracker_id}" for t in tracker.tracks if t.tracker_id >= 0)
        lost = [track for key, track in self.tracks.items() if key not in alive]
        for track in lost:
            del self.tracks[track.key]
        return TrackUpdate(seen, lost)

    def _observe(self, frame: Frame, label: str, tracker_id: int, det: analysis_pb2.Detection) -> Track:
        key = f"{label}/{tracker_id}"
        track = self.tracks.get(key)
        box: Box = (det.box.x1, det.box.y1, det.box.x2, det.box.y2)
        if track is None:
            track = Track(
                self._numbers(), key, label, frame, frame, det, deque(maxlen=self.settings.path_points)
            )
            self.tracks[key] = track
        det.track_id = track.number
        track.last, track.detection = frame, det
        track.boxes.append(box)
        track.memo.clear()
        return track

    def reset(self) -> list[Track]:
        """Forget everything (camera restarted); returns the tracks that were alive."""
        lost = list(self.tracks.values())
        self._trackers.clear()
        self.tracks.clear()
        return lost


def _to_sv(detections: list[analysis_pb2.Detection], indices: list[int]) -> sv.Detections:
    if not indices:
        empty = sv.Detections.empty()
        empty.data["index"] = np.empty(0, dtype=int)
        return empty
    xyxy = np.array(
        [(d.box.x1, d.box.y1, d.box.x2, d.box.y2) for d in (detections[i] for i in indices)], dtype=np.float64
    )
    scores = np.array([detections[i].score for i in indices], dtype=np.float64)
    return sv.Detections(xyxy=xyxy, confidence=scores, data={"index": np.array(indices, dtype=int)})
