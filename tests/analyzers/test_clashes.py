"""Two plugins declaring one analyzer name: flagged by ``plugins list``, blocking that name
only, settled by the one top-level ``disabled_plugins`` (or ``analyze --disable``). The third
party is ``clash_plugin`` (its own ``motion`` beside ``red_objects``), loaded like any plugin
module through the real plugin manager."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from analyzer_helpers import Results, context, publish_frames
from camsight.bus import Bus
from camsight.cli import app
from camsight.config import ConfigError, NatsSettings
from camsight.detector.service import DetectorService
from camsight.face.service import FaceService
from helpers import sample_video, wait_for
from typer.testing import CliRunner

runner = CliRunner()
PLUGIN = "analyzers.clash_plugin"
CLASH = (
    f"analyzer 'motion' is provided by both plugin '{PLUGIN}' and camsight's own plugin 'opencv': "
    f"rename it in '{PLUGIN}', or disable that plugin"
)
"""The line, but how to disable the plugin: each command says it its own way."""
VIDEO = ["--limit", "3", str(sample_video("bikes.mp4"))]


def test_plugins_list_flags_the_clash_and_disable_settles_it() -> None:
    text = runner.invoke(app, ["plugins", "list", "--plugin-module", PLUGIN])
    assert text.exit_code == 0, text.output
    assert (
        f"CLASH: {CLASH} (disabled_plugins: [{PLUGIN}], or --disable {PLUGIN} to see it here)" in text.output
    )
    listed = runner.invoke(app, ["plugins", "list", "--plugin-module", PLUGIN, "--json"])
    assert json.loads(listed.stdout)["clashes"] == {"motion": [PLUGIN, "opencv"]}
    settled = runner.invoke(
        app, ["plugins", "list", "--plugin-module", PLUGIN, "--disable", "opencv", "--json"]
    )
    assert json.loads(settled.stdout)["clashes"] == {}


def test_analyze_other_analyzers_work_beside_a_clash_and_disable_picks_one() -> None:
    module = ["--plugin-module", PLUGIN]
    for name in ("hog", "red_objects"):  # of the two clashing plugins, their other analyzers
        other = runner.invoke(app, ["analyze", "--plugin", name, *module, *VIDEO])
        assert other.exit_code == 0 and f"{name}: 3 frames analysed" in other.stderr, other.output
    clashing = runner.invoke(app, ["analyze", "--plugin", "motion", *module, *VIDEO])
    assert clashing.exit_code == 2 and f"{CLASH} (--disable {PLUGIN})" in clashing.output
    picked = runner.invoke(app, ["analyze", "--plugin", "motion", *module, "--disable", "opencv", *VIDEO])
    assert picked.exit_code == 0 and "motion: 3 frames analysed, 3 detections (always 3)" in picked.stderr


async def test_detector_runs_beside_a_clash_and_refuses_the_clashing_name(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results, running: Any
) -> None:
    section = {"analyzers": {"hog": {}, "red_objects": {}}, "plugin_modules": [PLUGIN]}
    service = DetectorService(context(bus, nats_settings, section))
    await running(service)
    await publish_frames(bus, "bikes", bikes[:3])
    await wait_for(lambda: len(results.items) == 6, 60, "hog and red_objects answer three frames each")
    assert {r.analyzer for r in results.items} == {"hog", "red_objects"}
    assert not any(r.skipped for r in results.items)
    with pytest.raises(ConfigError) as refused:
        DetectorService(
            context(bus, nats_settings, {"analyzers": {"motion": {}}, "plugin_modules": [PLUGIN]})
        )
    assert str(refused.value) == f"services.detector.analyzers: {CLASH} (disabled_plugins: [{PLUGIN}])"


async def test_top_level_disabled_plugins_settles_the_clash_for_the_detector(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results, running: Any
) -> None:
    section = {"analyzers": {"motion": {}}, "plugin_modules": [PLUGIN]}
    service = DetectorService(context(bus, nats_settings, section, disabled_plugins=["opencv"]))
    await running(service)
    await publish_frames(bus, "bikes", bikes[:2])
    await wait_for(lambda: len(results.items) == 2, 60, "the third-party motion answers both frames")
    assert [d.label for r in results.items for d in r.detections] == ["always", "always"]


async def test_top_level_disabled_plugins_serves_the_face_service_too(
    bus: Bus, nats_settings: NatsSettings
) -> None:
    with pytest.raises(ConfigError, match="no analyzer named 'centerface'"):
        FaceService(context(bus, nats_settings, {}, name="face", disabled_plugins=["faces"]))


async def test_the_per_service_setting_still_works_with_a_deprecation_line(
    bus: Bus, nats_settings: NatsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    section = {"analyzers": {"motion": {}}, "plugin_modules": [PLUGIN], "disabled_plugins": [PLUGIN]}
    with caplog.at_level(logging.WARNING, logger="camsight.analyzers.host"):
        service = DetectorService(context(bus, nats_settings, section))
    assert type(service.host.analyzers[0]).__module__.startswith("camsight_opencv")  # the built-in motion
    assert [r.getMessage() for r in caplog.records] == [
        "services.detector.disabled_plugins is deprecated: use the top-level disabled_plugins, "
        "which every service reads"
    ]
