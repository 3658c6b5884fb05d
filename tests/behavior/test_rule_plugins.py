"""Rule types through the camsight_rules hook: the built-ins, a third party's, bad input; and
the example plugin's ``wrong_way`` (pip-installed like a third party) used by ``camsight run``."""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from behavior.truth_video import FPS, Figure, write
from camsight.analyzers.manager import BUILTIN_RULES, PluginManager
from camsight.analyzers.rules import EventRule, Finding, TrackView
from camsight.analyzers.testing import ConformanceError, check_rule
from camsight.behavior.events import ENDED, STARTED, UPDATED
from camsight.behavior.rules import RuleError, RuleRegistry
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import CameraConfig
from helpers import camsight_process, install_example, sample_video
from test_trustworthy_events import camsight_run

PLUGIN = "behavior.rule_plugin"
SETTINGS = BehaviorSettings(update_interval_s=1.0)


def registry() -> RuleRegistry:
    manager = PluginManager()
    manager.add(importlib.import_module(PLUGIN), name=PLUGIN)
    return RuleRegistry(manager)


def camera(rule: dict[str, object]) -> CameraConfig:
    zone = {"id": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}
    return CameraConfig.model_validate({"id": "cam", "source": "x.mp4", "zones": [zone], "rules": [rule]})


def test_builtins_and_a_third_party_rule_type_come_through_the_hook() -> None:
    types = registry().types
    assert {types[name].plugin for name in ("zone_enter", "line_cross", "action")} == {BUILTIN_RULES}
    assert types["score_above"].plugin == PLUGIN
    cam = camera({"id": "r", "type": "score_above", "config": {"min": 0.5}})
    assert registry().build(cam.rules[0], cam, BehaviorSettings()).rule.type_name == "score_above"
    assert check_rule(types["score_above"].cls, {"min": 0.95}) == []  # the kit's tracks score 0.9


def test_a_plugin_claiming_a_builtin_rule_type_is_refused_naming_it() -> None:
    rules = registry()
    assert rules.errors[PLUGIN] == (
        f"plugin {PLUGIN!r} declares rule type 'zone_enter', "
        "which camsight's own camsight-rules owns: rename it"
    )
    assert rules.types["zone_enter"].plugin == BUILTIN_RULES


def test_bad_rule_configs_are_one_line_naming_the_plugin() -> None:
    cam = camera({"id": "r", "type": "score_above", "config": {"min": 7}})
    with pytest.raises(RuleError) as bad:
        registry().check([cam], BehaviorSettings())
    assert str(bad.value) == (
        "camera 'cam': rule 'r': invalid config for rule type 'score_above' "
        f"(plugin {PLUGIN!r}): min: Input should be less than or equal to 1"
    )
    typo = camera({"id": "r", "type": "zone_entr"})
    with pytest.raises(RuleError, match=r"rule 'r': no rule type 'zone_entr' \(available: action, crowding"):
        registry().build(typo.rules[0], typo, BehaviorSettings())


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_example("camsight-example-plugin", tmp_path_factory.mktemp("example"))


@pytest.mark.slow
def test_camsight_run_reports_the_walker_going_the_wrong_way(tmp_path: Path, example_site: Path) -> None:
    right = Figure([(0, -20, 120), (60, 340, 120)])
    left = Figure([(0, 340, 220), (60, -20, 220)])
    video = write(tmp_path / "two.mp4", [right, left], 70)
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps([[b for f in (right, left) if (b := f.box(i))] for i in range(70)]))
    rule = {"id": "ww", "type": "wrong_way", "labels": ["person"], "config": {"allowed": "right"}}
    config = {
        "services": {
            "detector": {
                "plugin_modules": ["behavior.truth_plugin"],
                "analyzers": {"sparse_truth": {"truth": str(truth), "fps": FPS, "drop": 0.3}},
            }
        },
        "cameras": [{"id": "scene", "source": str(video), "rules": [rule]}],
    }
    events = camsight_run(tmp_path, video, config, [example_site])
    custom = [e for e in events if e["type"] == "EVENT_TYPE_CUSTOM"]
    assert {e["id"] for e in custom} == {custom[0]["id"]}  # one event: the walker going left
    states = [e["state"] for e in sorted(custom, key=lambda e: e["revision"])]
    assert states[0] == "EVENT_STATE_STARTED" and states[-1] == "EVENT_STATE_ENDED"
    assert set(states[1:-1]) <= {"EVENT_STATE_UPDATED"}, states
    event = max(custom, key=lambda e: e["revision"])
    assert event["rule_id"] == "ww" and event["attributes"]["rule_type"] == "wrong_way"
    assert event["analyzer"] == "sparse_truth" and float(event["attributes"]["distance"]) >= 0.2
    assert "is going the wrong way; track lost after" in event["explanation"]["summary"]
    (path_start, path_end) = event["explanation"]["path"][0], event["explanation"]["path"][-1]
    assert path_end["x"] < path_start["x"]  # the walker going left


@pytest.mark.slow
def test_camsight_run_stops_on_a_bad_rule_config_in_one_line(tmp_path: Path, example_site: Path) -> None:
    rule = {"id": "ww", "type": "wrong_way", "config": {"allowed": "sideways"}}
    cameras = [{"id": "cam", "source": str(sample_video("bikes.mp4")), "rules": [rule]}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"cameras": cameras}))
    done = camsight_process(
        tmp_path, "run", "--config", "c.yaml", "--data-dir", str(tmp_path / "d"), path=[example_site]
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert (
        "camera 'cam': rule 'ww': invalid config for rule type 'wrong_way' (plugin 'example_rules'): "
        "allowed: Input should be 'left', 'right', 'up' or 'down'"
    ) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def lifecycle_scene() -> list:
    """Track 1 scores 0.9 until frame 30, then 0.6; track 2 scores 0.855 rising by 0.001 a
    frame until it leaves after frame 24 (lost at 49: parked for another ``max_lost_s``)."""
    from behavior_scenes import detection, mover, result

    one, two = mover((0.2, 0.5), (0.005, 0)), mover((0.9, 0.9), (-0.02, 0), last=24)
    out = []
    for seq in range(1, 61):
        seen = [detection(one(seq), score=0.9 if seq <= 30 else 0.6)]
        if (box := two(seq)) is not None:
            seen.append(detection(box, score=0.855 + 0.001 * (seq - 5)))
        out.append(result(seq, seen))
    return out


def run_rule(rule: dict[str, object], results: list) -> list:
    from camsight.behavior.engine import Engine

    engine = Engine(SETTINGS, registry())
    engine.set_camera(camera(rule))
    return [em.event for r in results for em in engine.push(r) + engine.flush() if em.event is not None]


def test_a_keyed_finding_is_one_event_started_updated_and_ended_by_the_host() -> None:
    """score_held reports "high" per track while it scores >= 0.8: STARTED at confirmation
    (frame 5), UPDATED every 1 s of media time while the reported score changes (track 2
    only), ENDED at the first frame showing the track unreported (track 1, frame 31, end 30)
    or when the track is lost (track 2, frame 49, end 24)."""
    from behavior_scenes import seq_of

    rule = {"id": "r", "type": "score_held", "config": {"min": 0.8}}
    events = run_rule(rule, lifecycle_scene())
    got = [
        (
            e.state,
            e.track_id,
            e.revision,
            seq_of(e.start_time),
            seq_of(e.update_time),
            seq_of(e.end_time) if e.HasField("end_time") else None,
            e.explanation.summary,
            dict(e.attributes),
        )
        for e in events
    ]
    held = {"rule_type": "score_held"}
    assert got == [
        (STARTED, 1, 1, 5, 5, None, "track 1 scores high", held | {"score": "0.900"}),
        (STARTED, 2, 1, 5, 5, None, "track 2 scores high", held | {"score": "0.855"}),
        (UPDATED, 2, 2, 5, 13, None, "track 2 scores high", held | {"score": "0.863"}),
        (UPDATED, 2, 3, 5, 21, None, "track 2 scores high", held | {"score": "0.871"}),
        (
            ENDED, 1, 2, 5, 31, 30, "track 1 scores high; no longer reported after 3.1s",
            held | {"score": "0.900", "duration_s": "3.125"},
        ),
        (
            ENDED, 2, 4, 5, 49, 24, "track 2 scores high; track lost after 2.4s",
            held | {"score": "0.874", "duration_s": "2.375"},
        ),
    ]  # fmt: skip
    start = f"5\x00{events[0].start_time.ToNanoseconds()}"  # a live source: start seq and capture time
    assert {e.id for e in events if e.track_id == 1} == {event_id("cam", "r", "hog/1/high", start)}
    assert [e.SerializeToString(deterministic=True) for e in run_rule(rule, lifecycle_scene())] == [
        e.SerializeToString(deterministic=True) for e in events
    ]  # the same file analysed again: the same ids and messages


def test_a_condition_goes_on_through_a_dropout_and_ends_when_its_rule_goes() -> None:
    """Frames without the track (a detector dropout, 10-12; the rule still sees another
    track, scoring low) say nothing about its condition; removing the rule ends it at once
    (end = the last frame reporting it, 19)."""
    from behavior_scenes import detection, mover, result, seq_of
    from camsight.behavior.engine import Engine

    one, low = mover((0.2, 0.5), (0.005, 0)), mover((0.8, 0.9), (-0.005, 0))
    engine = Engine(SETTINGS, registry())
    cam = camera({"id": "r", "type": "score_held", "config": {"min": 0.8}})
    engine.set_camera(cam)
    results = [
        result(seq, [detection(low(seq), score=0.6)] + ([] if 10 <= seq <= 12 else [detection(one(seq))]))
        for seq in range(1, 20)
    ]
    emissions = [em for r in results for em in engine.push(r) + engine.flush()]
    emissions += engine.set_camera(cam.model_copy(update={"rules": []}))
    events = [em.event for em in emissions if em.event is not None]
    assert [(e.state, seq_of(e.update_time), e.explanation.summary) for e in events] == [
        (STARTED, 5, "track 2 scores high"),
        (ENDED, 19, "track 2 scores high; the rule was removed after 1.8s"),
    ]
    assert seq_of(events[1].end_time) == 19 and events[0].id == events[1].id


def event_id(camera_id: str, rule: str, subject: str, start: str) -> str:
    """Decision 0046's id, computed here independently of the engine."""
    import hashlib

    key = f"{camera_id}\x00{rule}\x00{subject}\x00{start}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


class TwiceHigh(EventRule):
    """Breaks the protocol: reports one condition of a track twice in a frame."""

    name = "twice_high"

    def step(self, t: float, seen: Sequence[TrackView]) -> list[Finding]:
        return [Finding(v, "high", key="high") for v in seen for _ in range(2)]


def test_the_kit_checks_a_lifecycle_rule() -> None:
    findings = check_rule(registry().types["score_held"].cls, {"min": 0.5})
    assert len(findings) == 4 * 30 and {f.key for f in findings} == {"high"}
    with pytest.raises(ConformanceError, match="twice_high: a finding's key must be a string, reported once"):
        check_rule(TwiceHigh)


@pytest.mark.parametrize("rule_type", ["score_above", "score_held"])
def test_a_camera_with_a_plugin_rule_is_restored_from_its_checkpoint(rule_type: str) -> None:
    """A plugin rule's objects are part of the camera's state (decision 0048): its package is
    trusted when the checkpoint is loaded by a service that runs the plugin, refused otherwise.
    For a lifecycle rule (score_held) the checkpoint falls while both conditions hold."""
    from camsight.behavior import checkpoint
    from camsight.behavior.engine import Engine

    rules = registry()
    cam = camera({"id": "r", "type": rule_type, "config": {"min": 0.8}})
    results = lifecycle_scene()

    def events(emissions: list) -> list[bytes]:
        return [e.event.SerializeToString(deterministic=True) for e in emissions if e.event is not None]

    whole = Engine(SETTINGS, rules)
    whole.set_camera(cam)
    expected = events([em for r in results for em in whole.push(r)] + whole.flush())
    assert expected  # the rule reported the track

    first = Engine(SETTINGS, rules)
    first.set_camera(cam)
    before = [em for r in results[:20] for em in first.push(r)]
    data = checkpoint.dump(checkpoint.Checkpoint(20, first.cameras["cam"].state(), {}), SETTINGS)
    with pytest.raises(checkpoint.CheckpointError, match=r"behavior\.rule_plugin"):
        checkpoint.load(data, SETTINGS)
    saved = checkpoint.load(data, SETTINGS, rules.plugin_packages())
    second = Engine(SETTINGS, rules)
    assert second.restore(cam, saved.engine) == []
    after = [em for r in results[20:] for em in second.push(r)] + second.flush()
    assert events(before + after) == expected
