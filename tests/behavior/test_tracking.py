"""Tracks that survive real detectors: confirmation, dropouts, stationary objects (engine level, exact)."""

from __future__ import annotations

import random

import pytest
from behavior_scenes import FPS, camera, detection, mover, of_type, path, result, run, scene, seq_of
from camsight.behavior.engine import Engine
from camsight.behavior.model import Frame
from camsight.behavior.settings import BehaviorSettings
from camsight.behavior.tracking import StreamTracker
from camsight.cameras import CameraConfig
from camsight.config import ConfigError, Settings, service_section
from camsight.v1 import event_pb2
from pydantic import ValidationError

STARTED, ENDED = event_pb2.EVENT_STATE_STARTED, event_pb2.EVENT_STATE_ENDED
SQUARE = {"id": "square", "polygon": [[0.4, 0.3], [0.6, 0.3], [0.6, 0.7], [0.4, 0.7]]}
DOOR = {"id": "door", "a": [0.5, 1.0], "b": [0.5, 0.0], "in_side_right": True}


def stand_in_square(frames: int, gone: range = range(0)) -> list:
    """Walks right into the square (inside from frame 31), stops at x = 0.5 on frame 40 and
    stands there until ``frames``; no detection at all during ``gone`` (absorbed by MOG2)."""
    points = {seq: (0.103 + 0.01 * min(seq - 1, 39), 0.5) for seq in range(1, frames + 1) if seq not in gone}
    return scene(frames, [path(points)])


def loiter_camera() -> CameraConfig:
    return camera(
        zones=[SQUARE],
        rules=[
            {"id": "in", "type": "zone_enter", "zone": "square"},
            {"id": "idle", "type": "loitering", "zone": "square", "duration_s": 10},
        ],
    )


def test_an_object_that_stands_still_unseen_for_30_s_stays_one_track() -> None:
    # Standing from frame 40; the detector sees nothing for 30 s (240 frames), then again.
    events = run(loiter_camera(), stand_in_square(320, gone=range(50, 290)))
    assert len(of_type(events, "zone_enter")) == 1
    loiter = of_type(events, "loitering")
    assert [e.state for e in loiter if e.state == STARTED] == [STARTED]
    assert {e.track_id for e in events} == {1}
    # Dwell counts across the gap: started 10 s after the entry (frame 31), while unseen.
    assert seq_of(loiter[0].update_time) == 31 + 10 * FPS


def test_sparse_detections_of_a_standing_object_stay_one_track() -> None:
    rng = random.Random(5)
    results = []
    for r in stand_in_square(400):
        kept = [d for d in r.detections if rng.random() >= 0.5]  # a HOG-like detector: half missed
        results.append(result(r.frame.seq, kept))
    events = run(loiter_camera(), results)
    assert len(of_type(events, "zone_enter")) == 1
    assert len([e for e in of_type(events, "loitering") if e.state == STARTED]) == 1
    assert len({e.track_id for e in events}) == 1


def test_a_padded_box_flickering_across_the_edge_for_two_frames_makes_no_events() -> None:
    # Inside and still; every 10 frames its padded box pokes outside for 2 frames.
    points = {seq: (0.5, 0.5) for seq in range(1, 200)}
    for seq in range(20, 200, 10):
        points[seq] = points[seq + 1] = (0.5, 0.75)
    cfg = camera(
        zones=[SQUARE],
        rules=[
            {"id": "in", "type": "zone_enter", "zone": "square"},
            {"id": "out", "type": "zone_exit", "zone": "square"},
        ],
    )
    events = run(cfg, scene(200, [path(points, size=(0.1, 0.2))]))
    assert len(of_type(events, "zone_enter")) == 1
    assert of_type(events, "zone_exit") == []


def test_a_crossing_made_while_the_track_was_a_candidate_counts_at_its_frame() -> None:
    # Appears left of the line, is on it at frame 6 and right of it from frame 7; it is
    # confirmed only after 1 s of sightings (frame 10), but its history counts.
    cfg = camera(lines=[DOOR], rules=[{"id": "count", "type": "line_cross", "line": "door"}])
    events = run(cfg, scene(30, [mover((0.45, 0.5), (0.01, 0))]), min_track_age_s=1.0)
    cross = of_type(events, "line_cross")
    assert [seq_of(e.start_time) for e in cross] == [7]


def test_one_frame_ghosts_never_become_events() -> None:
    rng = random.Random(11)
    results = []
    for seq in range(1, 300):
        x, y = rng.uniform(0.0, 0.9), rng.uniform(0.1, 0.9)
        results.append(result(seq, [detection((x, y - 0.1, x + 0.1, y))]))
    cfg = camera(rules=[{"id": "seen", "type": "object_detected"}])
    assert run(cfg, results) == []


def test_two_analyzers_with_the_same_label_keep_their_own_tracks_and_events() -> None:
    cfg = camera(rules=[{"id": "seen", "type": "object_detected"}])
    # Two detectors see the same person; then nothing for 5 s, so both tracks end.
    a = scene(80, [mover((0.1, 0.5), (0.02, 0), last=40)], analyzer="hog")
    b = scene(80, [mover((0.12, 0.52), (0.02, 0), last=40)], analyzer="yolo")
    interleaved = [r for pair in zip(a, b, strict=True) for r in pair]
    events = run(cfg, interleaved)
    started = [e for e in events if e.state == STARTED]
    assert sorted(e.analyzer for e in started) == ["hog", "yolo"]
    assert len({e.id for e in started}) == 2
    # Each analyzer's event ends with its own track, with its own detections.
    ended = {e.analyzer: e for e in events if e.state == ENDED}
    assert set(ended) == {"hog", "yolo"}
    # The same results in another interleaving give the same ids (per-analyzer numbering).
    assert {e.id for e in run(cfg, a + b)} == {e.id for e in events}


def test_bad_tracking_and_rule_settings_name_the_field() -> None:
    with pytest.raises(ValidationError, match="debounce_s"):
        camera(zones=[SQUARE], rules=[{"id": "in", "type": "zone_enter", "zone": "square", "debounce_s": -1}])
    with pytest.raises(ValidationError, match="start_time"):
        camera(start_time="not a time")
    with pytest.raises(ConfigError, match=r"services\.behavior\.max_lost_s"):
        service_section(Settings(services={"behavior": {"max_lost_s": -2}}), "behavior", BehaviorSettings)


def frame_of_end(results: list, **settings: object) -> int | None:
    """The input frame whose push published the object_detected ENDED message (None: only at the flush)."""
    engine = Engine(BehaviorSettings(**settings))  # type: ignore[arg-type]
    engine.set_camera(camera(rules=[{"id": "seen", "type": "object_detected"}]))
    for r in results:
        if any(e.event is not None and e.event.state == ENDED for e in engine.push(r)):
            return r.frame.seq
    return None


def test_an_object_that_walks_out_of_the_picture_is_lost_at_once() -> None:
    # Seen until frame 30 at x = 0.97, walking right at 0.03 a frame: its prediction leaves the
    # picture at frame 31 or 32. Without the border rule it would coast 1.5 s and be parked 3 s more.
    frames = scene(80, [mover((0.1, 0.6), (0.03, 0.0), last=30)])
    assert (end := frame_of_end(frames)) is not None and end <= 33, end


def test_an_object_unseen_inside_the_picture_coasts_at_its_prediction() -> None:
    frames = scene(80, [mover((0.1, 0.6), (0.01, 0.0), last=30)])
    end = frame_of_end(frames)
    assert end is not None and end > 30 + 1.5 * FPS, end  # coasted its max_lost_s, then parked
    tracker = StreamTracker(BehaviorSettings(), "hog")
    for r in frames[:33]:
        update = tracker.update(Frame.of(r), r.detections)
    (track,) = update.present
    assert track.estimate is not None and track.estimate != track.box  # moved on with the motion model
    assert track.estimate[0] > track.box[0] + 0.01
