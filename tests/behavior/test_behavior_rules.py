"""Exact tests of the tracker + rules engine on synthetic scenes (no NATS)."""

from __future__ import annotations

import random

import pytest
from behavior_scenes import (
    FPS,
    camera,
    detection,
    mover,
    of_type,
    path,
    result,
    run,
    scene,
    seq_of,
)
from camsight.v1 import analysis_pb2, event_pb2

ENDED = event_pb2.EVENT_STATE_ENDED
STARTED = event_pb2.EVENT_STATE_STARTED
UPDATED = event_pb2.EVENT_STATE_UPDATED
IN, OUT = analysis_pb2.CROSSING_DIRECTION_IN, analysis_pb2.CROSSING_DIRECTION_OUT

# A vertical line at x = 0.5 drawn bottom to top: its right (the "in" side) is x > 0.5.
DOOR = {"id": "door", "a": [0.5, 1.0], "b": [0.5, 0.0], "in_side_right": True}
SQUARE = {"id": "square", "polygon": [[0.4, 0.3], [0.6, 0.3], [0.6, 0.7], [0.4, 0.7]]}


def line_camera(**rule: object) -> object:
    return camera(lines=[DOOR], rules=[{"id": "count", "type": "line_cross", "line": "door"} | rule])


def test_line_crossings_in_both_directions_are_counted_exactly() -> None:
    # Two walk right (in), one walks left (out); anchors cross x = 0.5 on frame 41.
    objects = [
        mover((0.103, 0.30), (0.01, 0)),
        mover((0.103, 0.95), (0.01, 0)),
        mover((0.897, 0.60), (-0.01, 0)),
    ]
    events = run(line_camera(), scene(80, objects))
    crossings = of_type(events, "line_cross")
    assert [(e.direction, e.state) for e in crossings] == [(IN, ENDED), (IN, ENDED), (OUT, ENDED)]
    for e in crossings:
        assert seq_of(e.start_time) == 41
        assert e.start_time == e.end_time
        assert e.line_id == "door"
        assert e.explanation.path and e.explanation.detections[0].track_id == e.track_id
        assert e.explanation.thresholds["hysteresis_frames"] == "2"
    assert dict(crossings[-1].attributes) == {
        "in_count": "2",
        "out_count": "1",
        "label_in_count": "2",
        "label_out_count": "1",
    }
    assert len({e.id for e in crossings}) == 3


def test_direction_filter_reports_one_way_but_counts_both() -> None:
    objects = [mover((0.103, 0.30), (0.01, 0)), mover((0.897, 0.60), (-0.01, 0))]
    crossings = of_type(run(line_camera(direction="out"), scene(80, objects)), "line_cross")
    assert [e.direction for e in crossings] == [OUT]
    assert crossings[0].attributes["in_count"] == "1"


def test_walking_back_and_forth_counts_every_real_crossing() -> None:
    points = {}
    x = 0.3
    for seq in range(1, 121):  # 0.3 -> 0.7 -> 0.3 -> 0.7 in steps of 0.01
        points[seq] = (x, 0.5)
        leg = (seq - 1) // 40
        x += 0.01 if leg % 2 == 0 else -0.01
    crossings = of_type(run(line_camera(), scene(120, [path(points)])), "line_cross")
    assert [e.direction for e in crossings] == [IN, OUT, IN]
    assert crossings[-1].attributes["in_count"] == "2"


def test_a_box_jittering_on_the_line_makes_no_extra_crossings() -> None:
    # Approaches from the left, jitters across the line for 60 frames (never two
    # frames in a row on the other side), then walks through once.
    points = {seq: (0.2 + 0.01 * seq, 0.5) for seq in range(1, 30)}  # up to 0.49
    for seq in range(30, 90):
        points[seq] = (0.49, 0.5) if seq % 2 else (0.51, 0.5)
    points.update({seq: (0.49 + 0.01 * (seq - 89), 0.5) for seq in range(90, 110)})
    crossings = of_type(run(line_camera(), scene(110, [path(points)])), "line_cross")
    assert [e.direction for e in crossings] == [IN]
    assert seq_of(crossings[0].start_time) == 91  # first of two frames in a row past the line


def test_walking_around_the_end_of_a_line_is_not_a_crossing() -> None:
    short = {"id": "door", "a": [0.5, 0.6], "b": [0.5, 0.4], "in_side_right": True}
    cfg = camera(lines=[short], rules=[{"id": "count", "type": "line_cross", "line": "door"}])
    assert of_type(run(cfg, scene(80, [mover((0.103, 0.9), (0.01, 0))])), "line_cross") == []


def zone_camera(*rules: dict[str, object]) -> object:
    return camera(zones=[SQUARE], rules=list(rules))


def test_zone_enter_and_exit_are_exact() -> None:
    # Bottom-centre at y = 0.5 walks right: inside from frame 31 (x = 0.403) to 50 (x = 0.593).
    cfg = zone_camera(
        {"id": "in", "type": "zone_enter", "zone": "square"},
        {"id": "out", "type": "zone_exit", "zone": "square"},
    )
    events = run(cfg, scene(80, [mover((0.103, 0.5), (0.01, 0))]))
    enter, leave = of_type(events, "zone_enter"), of_type(events, "zone_exit")
    assert [seq_of(e.start_time) for e in enter] == [31]
    assert [seq_of(e.start_time) for e in leave] == [51]
    assert enter[0].zone_id == "square" and enter[0].state == ENDED
    assert "entered zone square" in enter[0].explanation.summary


def test_a_box_jittering_on_a_zone_edge_makes_no_extra_events() -> None:
    cfg = zone_camera(
        {"id": "in", "type": "zone_enter", "zone": "square"},
        {"id": "out", "type": "zone_exit", "zone": "square"},
    )
    points = {seq: (0.2 + 0.01 * seq, 0.5) for seq in range(1, 20)}  # up to 0.39, outside
    for seq in range(20, 100):
        points[seq] = (0.39, 0.5) if seq % 2 else (0.41, 0.5)
    events = run(cfg, scene(100, [path(points)]))
    assert of_type(events, "zone_enter") == []
    assert of_type(events, "zone_exit") == []
    # With neither guard (1 frame, no time) the same jitter would be 40 enters.
    cfg1 = zone_camera(
        {"id": "in", "type": "zone_enter", "zone": "square", "hysteresis_frames": 1, "debounce_s": 0}
    )
    assert len(of_type(run(cfg1, scene(100, [path(points)])), "zone_enter")) == 40


def test_loitering_starts_after_the_dwell_time_and_ends_on_exit() -> None:
    cfg = zone_camera({"id": "idle", "type": "loitering", "zone": "square", "duration_s": 3})
    # Walks in (inside from frame 31), stands at x = 0.5 until frame 100, walks out.
    points = {seq: (0.103 + 0.01 * (seq - 1), 0.5) for seq in range(1, 41)}  # reaches 0.493
    points.update({seq: (0.5, 0.5) for seq in range(41, 101)})
    points.update(
        {seq: (0.5 + 0.02 * (seq - 100), 0.5) for seq in range(101, 130)}
    )  # out at x > 0.6: frame 106
    events = run(cfg, scene(130, [path(points)]), update_interval_s=2)
    loiter = of_type(events, "loitering")
    assert loiter[0].state == STARTED
    assert seq_of(loiter[0].start_time) == 31
    assert seq_of(loiter[0].update_time) == 31 + 3 * FPS  # exactly 3 s later
    assert loiter[0].attributes["dwell_s"] == "3.000"
    assert [e.state for e in loiter[1:-1]] == [UPDATED] * (len(loiter) - 2)
    assert loiter[-1].state == ENDED and seq_of(loiter[-1].end_time) == 106
    assert {e.id for e in loiter} == {loiter[0].id}
    assert [e.revision for e in loiter] == list(range(1, len(loiter) + 1))


def test_a_walker_unseen_before_the_dwell_is_reached_does_not_loiter() -> None:
    # Inside from frame 31 (x = 0.403), seen until frame 42 (1.4 s inside, still walking),
    # then never again: the track coasts 1.5 s past the 2 s dwell. Counting the coast
    # started a loitering that ended at the last sighting with dwell_s 1.4 (< 2).
    cfg = zone_camera({"id": "idle", "type": "loitering", "zone": "square", "duration_s": 2})
    points = {seq: (0.103 + 0.01 * (seq - 1), 0.5) for seq in range(1, 43)}
    events = run(cfg, scene(120, [path(points)]))
    assert of_type(events, "loitering") == []


def test_a_loitering_started_while_parked_standing_never_ends_under_its_dwell() -> None:
    # Walks in (inside from frame 31), stands 1 s, then a motion detector loses the still
    # person (last seen at frame 48): coasting 1.5 s, then parked standing, when the dwell
    # counts on unseen and passes 3 s. When the parked track times out the event ends at
    # its last sighting, but not before the dwell it started with.
    cfg = zone_camera({"id": "idle", "type": "loitering", "zone": "square", "duration_s": 3})
    points = {seq: (0.103 + 0.01 * (seq - 1), 0.5) for seq in range(1, 41)}  # reaches 0.493
    points.update({seq: (0.493, 0.5) for seq in range(41, 49)})
    events = run(cfg, scene(160, [path(points)]), stationary_lost_s=5)
    loiter = of_type(events, "loitering")
    assert [e.state for e in loiter] == [STARTED, ENDED]
    started = seq_of(loiter[0].update_time)
    assert started == 48 + 1.5 * FPS + 1  # parked: the first frame past the coast
    assert seq_of(loiter[-1].end_time) == started
    assert loiter[-1].attributes["dwell_s"] == loiter[0].attributes["dwell_s"] == "3.750"


def test_crowding_starts_and_ends_on_time() -> None:
    cfg = zone_camera({"id": "crowd", "type": "crowding", "zone": "square", "min_count": 3, "duration_s": 2})

    # Three people walk down into the square (top edge y = 0.3) one after another
    # and stand there; the first leaves downwards later.
    def walker(x: float, first: int, leave: int | None = None) -> object:
        pts = {}
        for seq in range(first, 200):
            y = 0.203 + 0.01 * (seq - first)  # inside (y > 0.3) from first + 10
            y = min(y, 0.5)
            if leave is not None and seq >= leave:
                y = 0.5 + 0.02 * (seq - leave + 1)  # below 0.7 from leave + 10
            pts[seq] = (x, y)
        return path(pts, size=(0.04, 0.1))

    walkers = [walker(0.43, 1, leave=100), walker(0.5, 11), walker(0.57, 21)]
    crowd = of_type(run(cfg, scene(150, walkers)), "crowding")
    assert [e.state for e in crowd] == [STARTED, ENDED]
    assert seq_of(crowd[0].start_time) == 31  # third person inside
    assert seq_of(crowd[0].update_time) == 31 + 2 * FPS
    assert crowd[0].attributes["count"] == "3"
    assert seq_of(crowd[1].end_time) == 110  # first frame the first person is below the square
    assert crowd[0].track_id == 0 and len(crowd[0].explanation.detections) == 3


def test_a_parked_object_does_not_re_alert() -> None:
    cfg = zone_camera(
        {"id": "in", "type": "zone_enter", "zone": "square"},
        {"id": "idle", "type": "loitering", "zone": "square", "duration_s": 5},
        {"id": "seen", "type": "object_detected", "labels": ["car"]},
    )
    rng = random.Random(7)
    results = []
    for seq in range(1, 400):
        if 150 <= seq < 156 or 300 <= seq < 305:
            results.append(result(seq))  # the detector misses it for a few frames
            continue
        dx, dy = rng.uniform(-0.003, 0.003), rng.uniform(-0.003, 0.003)
        box = (0.45 + dx, 0.4 + dy, 0.55 + dx, 0.5 + dy)
        results.append(result(seq, [detection(box, "car", rng.uniform(0.6, 0.95))]))
    events = run(cfg, results)
    assert len(of_type(events, "zone_enter")) == 1
    loiter = of_type(events, "loitering")
    assert [e.state for e in loiter].count(STARTED) == 1 and len({e.id for e in loiter}) == 1
    seen = of_type(events, "object_detected")
    assert [e.state for e in seen].count(STARTED) == 1 and len({e.id for e in seen}) == 1
    assert {e.track_id for e in events} == {1}


def test_unconfirmed_tracks_make_no_events() -> None:
    everywhere = {"id": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}
    cfg = camera(
        zones=[everywhere],
        rules=[
            {"id": "in", "type": "zone_enter", "zone": "all", "hysteresis_frames": 1},
            {"id": "seen", "type": "object_detected"},
        ],
    )
    rng = random.Random(3)
    results = []
    for seq in range(1, 200):
        # Flicker: a box somewhere new every frame, never matched twice in a row.
        x, y = rng.uniform(0.05, 0.3), rng.uniform(0.1, 0.85)
        dets = [detection((x, y, x + 0.05, y + 0.1))] if seq % 2 else []
        # And, apart from them, a steady box whose score is below the activation threshold.
        dets.append(detection((0.65, 0.4, 0.75, 0.5), score=0.3))
        results.append(result(seq, dets))
    assert run(cfg, results) == []


def face(
    box: tuple[float, float, float, float], who: str = "", distance: float = 0.4
) -> analysis_pb2.Detection:
    identity = analysis_pb2.IdentityMatch(
        identity_id=who, display_name=who.title(), distance=distance, matched=bool(who)
    )
    return detection(box, "face", 0.9, identity)


def test_face_recognized_once_per_track_and_identity() -> None:
    cfg = camera(
        rules=[{"id": "known", "type": "face_recognized"}, {"id": "stranger", "type": "unknown_face"}],
    )
    a_box, b_box = (0.2, 0.2, 0.3, 0.35), (0.7, 0.2, 0.8, 0.35)
    results = []
    for seq in range(1, 120):
        who = "bob" if 50 <= seq < 56 else "alice"  # six frames where the gallery says bob
        dets = [face(a_box, who), face(b_box)]  # b matches nobody, every frame
        results.append(result(seq, dets, analyzer="centerface", kind="faces"))
    results += [result(seq, [], analyzer="centerface", kind="faces") for seq in range(120, 200)]
    # Faces that stand still are parked when they vanish; here they end 3 s later.
    events = run(cfg, results, stationary_lost_s=3)
    known = [e for e in of_type(events, "face_recognized") if e.state == STARTED]
    assert [(e.identity_id, e.identity_name) for e in known] == [("alice", "Alice"), ("bob", "Bob")]
    assert seq_of(known[1].start_time) == 50
    unknown = [e for e in of_type(events, "unknown_face") if e.state == STARTED]
    assert len(unknown) == 1 and unknown[0].identity_id == ""
    ended = [e for e in events if e.state == ENDED]
    assert len(ended) == 3  # each ended once, when its track was lost
    assert "recognized as Alice" in known[0].explanation.summary


def test_summaries_describe_the_best_evidence_not_the_last_frame() -> None:
    # A face the gallery matches as alice (distance 0.4), then no longer (0.7), then gone; and
    # an object whose score falls. Each ENDED summary gives what the event's confidence and
    # snapshot show: alice's match, the best score.
    cfg = camera(
        rules=[
            {"id": "known", "type": "face_recognized"},
            {"id": "seen", "type": "object_detected", "labels": ["person"]},
        ]
    )
    results = []
    for seq in range(1, 61):
        matched = seq <= 40
        fading = detection((0.6, 0.5, 0.7, 0.9), score=0.9 if seq <= 10 else 0.55)
        faces = face((0.2, 0.2, 0.3, 0.35), "alice" if matched else "", 0.4 if matched else 0.7)
        results.append(result(seq, [faces, fading]))
    results += [result(seq, []) for seq in range(61, 140)]
    events = run(cfg, results, stationary_lost_s=3)
    [known] = [e for e in of_type(events, "face_recognized") if e.state == ENDED]
    assert "recognized as Alice (distance 0.400)" in known.explanation.summary
    [seen] = [e for e in of_type(events, "object_detected") if e.state == ENDED]
    assert "detected (score 0.90)" in seen.explanation.summary
    assert seen.confidence == pytest.approx(0.9)


def test_replay_gives_the_same_event_ids() -> None:
    cfg = zone_camera(
        {"id": "in", "type": "zone_enter", "zone": "square"},
        {"id": "seen", "type": "object_detected"},
    )
    results = scene(80, [mover((0.103, 0.5), (0.01, 0)), mover((0.103, 0.9), (0.01, -0.005))])
    first = [(e.id, e.state, e.revision) for e in run(cfg, results)]
    second = [(e.id, e.state, e.revision) for e in run(cfg, results)]
    assert first == second and len(first) >= 3


def test_skipped_frames_carry_no_detections_but_advance_time() -> None:
    cfg = zone_camera({"id": "crowd", "type": "crowding", "zone": "square", "min_count": 1, "duration_s": 2})
    results = scene(20, [mover((0.5, 0.5), (0, 0))])
    results += [result(seq, skipped=True) for seq in range(21, 40)]
    crowd = of_type(run(cfg, results), "crowding")
    assert [e.state for e in crowd] == [STARTED]
    # A track starts at ByteTrack's second match (frame 2); once confirmed (frame 4) its
    # history counts, so it is in the zone from frame 2, and the crowd starts 2 s later.
    assert seq_of(crowd[0].start_time) == 2
    assert seq_of(crowd[0].update_time) == 2 + 2 * FPS
