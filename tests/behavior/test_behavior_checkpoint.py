"""Checkpoints of a camera's behavior state: restored, the engine goes on as if never stopped."""

from __future__ import annotations

import os
import pickle
import zlib
from pathlib import Path

import pytest
from behavior_scenes import CAMERA, camera, detection, path, result
from camsight.behavior import checkpoint
from camsight.behavior.engine import Engine
from camsight.behavior.events import Emission
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import CameraConfig
from camsight.v1 import analysis_pb2, event_pb2

DWELL_ZONE = {"id": "bench", "polygon": [[0.35, 0.0], [0.65, 0.0], [0.65, 1.0], [0.35, 1.0]]}
EXIT_LINE = {"id": "gate", "a": [0.8, 1.0], "b": [0.8, 0.0], "in_side_right": True}
RULES = [
    {"id": "seen", "type": "object_detected"},
    {"id": "enter", "type": "zone_enter", "zone": "bench"},
    {"id": "exit", "type": "zone_exit", "zone": "bench"},
    {"id": "dwell", "type": "loitering", "zone": "bench", "duration_s": 3},
    {"id": "crowd", "type": "crowding", "zone": "bench", "min_count": 1, "duration_s": 2},
    {"id": "count", "type": "line_cross", "line": "gate"},
]


def dwell_config() -> CameraConfig:
    return camera(zones=[DWELL_ZONE], lines=[EXIT_LINE], rules=RULES)


def dwell_scene() -> list[analysis_pb2.AnalysisResult]:
    """A person walks in (frames 1-20), stands in the zone for 7.5 s with a little sway,
    walks out across the line (81-100), then 5 s of empty frames; a second person passes
    by along the top. Frames 30-33 and 90-93 arrive out of order, so some cuts fall while
    the reorder buffer holds results."""
    walker: dict[int, tuple[float, float]] = {}
    for seq in range(1, 101):
        if seq <= 20:
            x = 0.1 + 0.4 * (seq - 1) / 19
        elif seq <= 80:
            x = 0.5 + (0.004 if seq % 2 else -0.004)
        else:
            x = 0.5 + 0.45 * (seq - 80) / 20
        walker[seq] = (x, 0.9)
    passer = {seq: (0.05 + 0.9 * (seq - 40) / 40, 0.3) for seq in range(40, 81)}
    tracks = [path(walker), path(passer, size=(0.08, 0.15))]
    out = []
    for seq in range(1, 141):
        boxes = [b for b in (t(seq) for t in tracks) if b is not None]
        out.append(result(seq, [detection(b) for b in boxes]))
    for start in (30, 90):
        out[start - 1 : start + 3] = [out[start], out[start - 1], out[start + 2], out[start + 1]]
    return out


def messages(emissions: list[Emission]) -> list[bytes]:
    return [e.event.SerializeToString(deterministic=True) for e in emissions if e.event is not None]


def uninterrupted(results: list[analysis_pb2.AnalysisResult]) -> list[bytes]:
    engine = Engine(BehaviorSettings())
    engine.set_camera(dwell_config())
    out = [em for r in results for em in engine.push(r)] + engine.flush()
    return messages(out)


def test_the_scene_has_every_kind_of_state_to_lose() -> None:
    events = [event_pb2.Event.FromString(m) for m in uninterrupted(dwell_scene())]
    kinds = {(e.rule_id, event_pb2.EventState.Name(e.state)) for e in events}
    assert {
        ("enter", "EVENT_STATE_ENDED"),
        ("exit", "EVENT_STATE_ENDED"),
        ("dwell", "EVENT_STATE_STARTED"),
        ("dwell", "EVENT_STATE_UPDATED"),
        ("dwell", "EVENT_STATE_ENDED"),
        ("crowd", "EVENT_STATE_STARTED"),
        ("crowd", "EVENT_STATE_ENDED"),
        ("count", "EVENT_STATE_ENDED"),
        ("seen", "EVENT_STATE_ENDED"),
    } <= kinds


@pytest.mark.parametrize("cut", [1, 12, 25, 31, 45, 60, 79, 91, 100, 120])
def test_a_camera_restored_from_its_checkpoint_goes_on_as_if_never_stopped(cut: int) -> None:
    """Stop after ``cut`` results, checkpoint, restore into a new engine, go on: every event
    message (ids, states, revisions, times, explanations) is the uninterrupted run's."""
    results, settings = dwell_scene(), BehaviorSettings()
    first = Engine(settings)
    first.set_camera(dwell_config())
    before = [em for r in results[:cut] for em in first.push(r)]
    data = checkpoint.dump(checkpoint.Checkpoint(cut, first.cameras[CAMERA].state(), {}), settings)

    saved = checkpoint.load(data, BehaviorSettings(replicas=3, replica_index=2, batch=8))
    assert saved.position == cut
    second = Engine(settings)
    assert second.restore(dwell_config(), saved.engine) == []
    after = [em for r in results[cut:] for em in second.push(r)] + second.flush()
    assert messages(before + after) == uninterrupted(results)


def test_a_checkpoint_from_before_loitering_kept_its_dwell_frames_still_restores() -> None:
    """Checkpoints taken before ``Loitering.reached`` existed restore, and the run goes on
    with the same events."""
    results, settings = dwell_scene(), BehaviorSettings()
    first = Engine(settings)
    first.set_camera(dwell_config())
    before = [em for r in results[:60] for em in first.push(r)]
    state = first.cameras[CAMERA].state()
    _, loitering = state["runners"]["dwell"]
    del loitering.__dict__["reached"]  # as an older camsight pickled it
    saved = checkpoint.load(checkpoint.dump(checkpoint.Checkpoint(60, state, {}), settings), settings)
    second = Engine(settings)
    second.restore(dwell_config(), saved.engine)
    after = [em for r in results[60:] for em in second.push(r)] + second.flush()
    assert messages(before + after) == uninterrupted(results)


def test_a_rule_changed_while_no_replica_ran_ends_its_open_event_on_restore() -> None:
    results, settings = dwell_scene(), BehaviorSettings()
    first = Engine(settings)
    first.set_camera(dwell_config())
    for r in results[:60]:  # the walker loiters (STARTED) and is in the crowd
        first.push(r)
    saved = checkpoint.load(
        checkpoint.dump(checkpoint.Checkpoint(60, first.cameras[CAMERA].state(), {}), settings), settings
    )
    changed = dwell_config().model_copy(
        update={"rules": [r for r in dwell_config().rules if r.id != "dwell"]}
    )
    ended = Engine(settings).restore(changed, saved.engine)
    assert [(e.event.rule_id, e.event.state) for e in ended if e.event] == [("dwell", 3)]


def test_a_checkpoint_naming_a_foreign_callable_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {marker}",))

    data = checkpoint.FORMAT + zlib.compress(pickle.dumps((1, {}, Exploit(), {})))
    with pytest.raises(checkpoint.CheckpointError, match=r"checkpoint names posix\.system"):
        checkpoint.load(data, BehaviorSettings())
    assert not marker.exists()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x05 not ours", "not a checkpoint of format camsight.behavior.state/1"),
        (checkpoint.FORMAT + b"\x78\x01 truncated", "checkpoint is corrupt"),
        (checkpoint.FORMAT + zlib.compress(pickle.dumps((1, {}, {"config": 1}, {}))), "does not hold"),
    ],
)
def test_a_value_that_is_no_checkpoint_is_refused_in_one_line(data: bytes, reason: str) -> None:
    with pytest.raises(checkpoint.CheckpointError, match=reason) as err:
        checkpoint.load(data, BehaviorSettings())
    assert "\n" not in str(err.value)


def test_a_checkpoint_taken_with_other_tracking_settings_is_refused() -> None:
    engine = Engine(BehaviorSettings())
    engine.set_camera(dwell_config())
    data = checkpoint.dump(checkpoint.Checkpoint(0, engine.cameras[CAMERA].state(), {}), BehaviorSettings())
    with pytest.raises(checkpoint.CheckpointError, match=r"other tracking settings \(max_lost_s\)"):
        checkpoint.load(data, BehaviorSettings(max_lost_s=3))
