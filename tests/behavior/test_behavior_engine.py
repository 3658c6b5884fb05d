"""The engine around the rules: frame order, restarts, hot reload, partitions."""

from __future__ import annotations

import random

from behavior_scenes import CAMERA, camera, mover, of_type, result, run, scene, seq_of
from camsight.behavior import partition
from camsight.behavior.engine import Engine
from camsight.behavior.reorder import ReorderBuffer
from camsight.behavior.settings import BehaviorSettings
from camsight.v1 import analysis_pb2, event_pb2

DOOR = {"id": "door", "a": [0.5, 1.0], "b": [0.5, 0.0], "in_side_right": True}
SQUARE = {"id": "square", "polygon": [[0.4, 0.3], [0.6, 0.3], [0.6, 0.7], [0.4, 0.7]]}
RULES = [
    {"id": "count", "type": "line_cross", "line": "door"},
    {"id": "in", "type": "zone_enter", "zone": "square"},
    {"id": "seen", "type": "object_detected"},
]


def ids(events: list[event_pb2.Event]) -> list[tuple[str, int, int]]:
    return [(e.id, e.state, e.revision) for e in events]


def test_reorder_buffer_releases_in_order_and_drops_late_results() -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(window=2)
    assert buf.push(1, 1).items == [1]
    assert buf.push(3, 3).items == []  # waits for 2
    assert buf.push(2, 2).items == [2, 3]
    assert buf.push(5, 5).items == []
    assert buf.push(6, 6).items == []
    assert buf.push(7, 7).items == [5, 6, 7]  # window exceeded: frame 4 is given up
    assert buf.push(4, 4).late
    assert buf.push(7, 7).late  # a duplicate
    assert buf.push(9, 9).items == []
    assert buf.restart() == [9] and not buf.behind(1)


def test_results_shuffled_within_the_window_give_the_same_events() -> None:
    cfg = camera(lines=[DOOR], zones=[SQUARE], rules=RULES)
    results = scene(80, [mover((0.103, 0.5), (0.01, 0)), mover((0.897, 0.9), (-0.01, 0))])
    shuffled = list(results)
    rng = random.Random(5)
    for i in range(0, len(shuffled) - 3, 4):  # swap neighbours within blocks of four
        block = shuffled[i : i + 4]
        rng.shuffle(block)
        shuffled[i : i + 4] = block
    assert shuffled != results
    assert ids(run(cfg, shuffled, reorder_window=4)) == ids(run(cfg, results))


def test_late_results_are_dropped_and_counted() -> None:
    engine = Engine(BehaviorSettings(reorder_window=1))
    engine.set_camera(camera(lines=[DOOR], rules=RULES[:1]))
    for seq in (1, 2, 4, 5, 3):  # 3 arrives after 4 and 5 were released
        engine.push(result(seq))
    assert engine.stats.late == 1
    assert engine.stats.processed == 4


def test_a_camera_restart_resets_tracks_and_keeps_ids_apart() -> None:
    cfg = camera(lines=[DOOR], rules=RULES[:1])
    engine = Engine(BehaviorSettings())
    engine.set_camera(cfg)
    walk = scene(80, [mover((0.103, 0.5), (0.01, 0))])
    first = [e.event for r in walk for e in engine.push(r) if e.event]
    # The decoder restarts: frame numbers start at 1 again, an hour later.
    later = scene(80, [mover((0.103, 0.5), (0.01, 0))])
    for r in later:
        r.frame.capture_time.seconds += 3600
    second = [e.event for r in later for e in engine.push(r) if e.event]
    assert engine.stats.restarts == 1
    assert len(first) == len(second) == 1
    assert seq_of(second[0].start_time) == 41 + 3600 * 8
    assert first[0].id != second[0].id


def test_hot_reload_keeps_unchanged_rules_and_ends_removed_ones() -> None:
    engine = Engine(BehaviorSettings())
    loiter = {"id": "idle", "type": "loitering", "zone": "square", "duration_s": 1}
    engine.set_camera(camera(zones=[SQUARE], rules=[loiter, RULES[2]]))
    parked = scene(40, [mover((0.5, 0.5), (0, 0))])
    out = [e.event for r in parked for e in engine.push(r) if e.event]
    assert [e.state for e in of_type(out, "loitering")] == [event_pb2.EVENT_STATE_STARTED]
    # Reload: the loitering rule is removed, object_detected is unchanged, a line rule is added.
    reload = engine.set_camera(camera(zones=[SQUARE], lines=[DOOR], rules=[RULES[2], RULES[0]]))
    ended = [e.event for e in reload if e.event]
    assert [(e.rule_id, e.state) for e in ended] == [("idle", event_pb2.EVENT_STATE_ENDED)]
    assert set(engine.cameras[CAMERA].runners) == {"seen", "count"}
    more = [e.event for r in scene(60, [mover((0.5, 0.5), (0, 0))])[40:] for e in engine.push(r) if e.event]
    assert of_type(more, "object_detected") == []  # same track, same open event: no second start


def test_partitions_give_every_camera_exactly_one_owner() -> None:
    cameras = [f"cam{i}" for i in range(100)]
    owned = [{c for c in cameras if partition.owner(c, 3) == i} for i in range(3)]
    assert sorted(c for part in owned for c in part) == sorted(cameras)
    assert all(len(part) > 15 for part in owned)  # roughly even
    assert partition.filter_subjects(["b", "a"]) == ["detections.*.a", "detections.*.b"]


def test_only_labels_some_rule_looks_at_are_tracked() -> None:
    engine = Engine(BehaviorSettings())
    engine.set_camera(
        camera(lines=[DOOR], rules=[{"id": "count", "type": "line_cross", "line": "door", "labels": ["car"]}])
    )
    people = scene(10, [mover((0.2, 0.5), (0.01, 0))], label="person")
    cars = scene(10, [mover((0.2, 0.9), (0.01, 0))], label="car")
    for p, c in zip(people, cars, strict=True):
        p.detections.extend(c.detections)
        engine.push(p)
    assert set(engine.cameras[CAMERA].streams["hog"].tracker.tracks) == {"hog/car/1"}
    # Without rules nothing is tracked at all; tracks of a label dropped by a reload are lost.
    engine.set_camera(camera())
    engine.push(result(11))
    assert engine.cameras[CAMERA].streams["hog"].tracker.tracks == {}


def end_of_stream(seq: int, analyzer: str = "hog") -> object:
    """The analyzer's answer to the decoder's end marker (Frame.end_of_stream)."""
    marker = result(seq, analyzer=analyzer, skipped=True)
    marker.frame.end_of_stream = True
    marker.frame.media_time.CopyFrom(result(seq - 1).frame.media_time)  # the last picture's time
    return marker


def test_the_end_of_a_file_ends_every_open_event_once_all_streams_ended() -> None:
    loiter = {"id": "idle", "type": "loitering", "zone": "square", "duration_s": 1}
    crowd = {"id": "crowd", "type": "crowding", "zone": "square", "min_count": 1, "duration_s": 1}
    cfg = camera(zones=[SQUARE], rules=[loiter, crowd, RULES[2]])
    engine = Engine(BehaviorSettings())
    engine.set_camera(cfg)
    parked = scene(40, [mover((0.5, 0.5), (0, 0))])  # stands in the square until the file ends
    faces = scene(40, [], analyzer="faces", kind="faces")  # a second analyzer saw nothing
    out = [
        e.event for pair in zip(parked, faces, strict=True) for r in pair for e in engine.push(r) if e.event
    ]
    assert {e.state for e in out} == {event_pb2.EVENT_STATE_STARTED}
    opened = {e.id for e in out}
    assert len(opened) == 3  # loitering, crowding, object_detected

    # The object detector's stream ends first: its track's events end at its last sighting.
    first = [e.event for e in engine.push(end_of_stream(41)) if e.event]
    assert {e.rule_id for e in first} == {"idle", "seen"}
    assert all(e.state == event_pb2.EVENT_STATE_ENDED and seq_of(e.end_time) == 40 for e in first)
    # Once every stream of the camera ended, what is open camera-wide ends too.
    last = [e.event for e in engine.push(end_of_stream(41, analyzer="faces")) if e.event]
    assert [(e.rule_id, e.state) for e in last] == [("crowd", event_pb2.EVENT_STATE_ENDED)]
    assert last[0].explanation.summary
    assert {e.id for e in first + last} == opened
    assert engine.stats.processed == 80  # markers are not frames

    # Run the file again an hour later (the decoder numbers from 1): new events, new ids.
    rerun = scene(40, [mover((0.5, 0.5), (0, 0))])
    for r in rerun:
        r.frame.capture_time.seconds += 3600
    again = [e.event for r in rerun for e in engine.push(r) if e.event]
    assert {e.rule_id for e in again} == {"idle", "crowd", "seen"} and not {e.id for e in again} & opened


def recorded(results: list[analysis_pb2.AnalysisResult], read_at: int) -> list[analysis_pb2.AnalysisResult]:
    """The results as of a recording read at ``read_at`` seconds: media times from the frame
    numbers (8 fps), the origin fixed by the container, the capture times the reading's."""
    for r in results:
        r.frame.media_time.FromNanoseconds((r.frame.seq - 1) * 125_000_000)
        r.frame.media_origin.FromSeconds(1_772_352_000)
        r.frame.capture_time.seconds += read_at
    return results


def test_a_recording_read_again_gives_the_same_track_numbers_and_event_ids() -> None:
    """Re-analysing a file into the same data folder must replace its events, not add copies:
    the ids hash the track number, which starts again at 1 with each reading of a recording,
    whether the reading before reached the end of the file or was cut short."""
    engine = Engine(BehaviorSettings())
    engine.set_camera(camera(lines=[DOOR], zones=[SQUARE], rules=RULES))

    def read(at: int, frames: int = 80) -> list[tuple[str, int]]:
        walkers = scene(frames, [mover((0.103, 0.5), (0.01, 0)), mover((0.897, 0.9), (-0.01, 0))])
        out = [e.event for r in recorded(walkers, at) for e in engine.push(r) if e.event]
        return sorted((e.id, e.track_id) for e in out if e.state == event_pb2.EVENT_STATE_STARTED)

    first = read(0)
    assert {n for _, n in first} == {1, 2}
    engine.push(end_of_stream(81))
    assert read(3600) == first  # read again once the first reading ended
    read(7200, frames=30)  # a reading cut short: no end marker
    assert read(10800) == first
    assert engine.stats.restarts == 3
