"""Rule types through the camsight_rules hook: the built-ins, a third party's, bad input; and
the example plugin's ``wrong_way`` (pip-installed like a third party) used by ``camsight run``."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import yaml
from behavior.truth_video import FPS, Figure, write
from camsight.analyzers.manager import BUILTIN_RULES, PluginManager
from camsight.analyzers.testing import check_rule
from camsight.behavior.rules import RuleError, RuleRegistry
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import CameraConfig
from helpers import camsight_process, install_example, sample_video
from test_trustworthy_events import camsight_run

PLUGIN = "behavior.rule_plugin"


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
    (event,) = [e for e in events if e["type"] == "EVENT_TYPE_CUSTOM"]
    assert event["rule_id"] == "ww" and event["attributes"]["rule_type"] == "wrong_way"
    assert event["state"] == "EVENT_STATE_ENDED" and event["analyzer"] == "sparse_truth"
    assert "went the wrong way" in event["explanation"]["summary"]
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


def test_a_camera_with_a_plugin_rule_is_restored_from_its_checkpoint() -> None:
    """A plugin rule's objects are part of the camera's state (decision 0048): its package is
    trusted when the checkpoint is loaded by a service that runs the plugin, refused otherwise."""
    from behavior_scenes import detection, result
    from camsight.behavior import checkpoint
    from camsight.behavior.engine import Engine

    rules = registry()
    cam = camera({"id": "r", "type": "score_above", "config": {"min": 0.5}})
    results = [
        result(seq, [detection((0.1 + 0.01 * seq, 0.4, 0.2 + 0.01 * seq, 0.6))]) for seq in range(1, 41)
    ]

    def events(emissions: list) -> list[bytes]:
        return [e.event.SerializeToString(deterministic=True) for e in emissions if e.event is not None]

    whole = Engine(BehaviorSettings(), rules)
    whole.set_camera(cam)
    expected = events([em for r in results for em in whole.push(r)] + whole.flush())
    assert expected  # the rule reported the track

    first = Engine(BehaviorSettings(), rules)
    first.set_camera(cam)
    before = [em for r in results[:20] for em in first.push(r)]
    data = checkpoint.dump(checkpoint.Checkpoint(20, first.cameras["cam"].state(), {}), BehaviorSettings())
    with pytest.raises(checkpoint.CheckpointError, match=r"behavior\.rule_plugin"):
        checkpoint.load(data, BehaviorSettings())
    saved = checkpoint.load(data, BehaviorSettings(), rules.plugin_packages())
    second = Engine(BehaviorSettings(), rules)
    assert second.restore(cam, saved.engine) == []
    after = [em for r in results[20:] for em in second.push(r)] + second.flush()
    assert events(before + after) == expected
