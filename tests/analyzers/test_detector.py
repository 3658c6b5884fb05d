"""The detector service on a real nats-server, turning real frames of bikes.mp4 into AnalysisResults."""

from __future__ import annotations

from typing import Any

import pytest
from analyzer_helpers import Results, context, publish_frames
from camsight.bus import Bus
from camsight.config import ConfigError, NatsSettings
from camsight.detector.service import DetectorService
from helpers import wait_for


async def test_hog_and_motion_find_people_and_motion_in_bikes(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results, running: Any
) -> None:
    ctx = context(bus, nats_settings, {"analyzers": {"hog": {}, "motion": {}}, "batch": 4})
    service = DetectorService(ctx)
    await running(service)
    assert service.readiness() == (True, "")

    await publish_frames(bus, "bikes", bikes)
    await wait_for(lambda: len(results.items) >= 2 * len(bikes), 60, "one result per frame and analyzer")

    for analyzer, kind, label in (("hog", "objects", "person"), ("motion", "motion", "motion")):
        got = results.of(analyzer)
        assert [r.frame.seq for r in got] == list(range(1, len(bikes) + 1))
        assert all(r.kind == kind and not r.skipped and r.producer == "test-1" for r in got)
        boxes = [d.box for r in got for d in r.detections]
        assert boxes, f"{analyzer} found nothing in {len(bikes)} frames of bikes.mp4"
        assert all(d.label == label and 0 <= d.score <= 1 for r in got for d in r.detections)
        assert all(0 <= b.x1 <= b.x2 <= 1 and 0 <= b.y1 <= b.y2 <= 1 for b in boxes)
        assert any(b.x2 - b.x1 < 0.9 for b in boxes), "boxes should be regions, not the whole frame"
    first = results.of("hog")[0]
    assert first.frame.stream == "FRAMES" and first.frame.stream_sequence >= 1
    assert (first.frame.width, first.frame.height) == (640, 272)
    assert first.batch_size >= 1 and first.model_version


async def test_too_old_frames_are_answered_as_skipped_and_counted(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results, running: Any
) -> None:
    ctx = context(bus, nats_settings, {"analyzers": {"motion": {}}, "max_frame_age_s": 5})
    service = DetectorService(ctx)
    await running(service)
    await publish_frames(bus, "old", bikes[:3], age_s=60)
    await wait_for(lambda: len(results.items) == 3, 20, "three skipped results")
    assert all(r.skipped and r.skip_reason == "too old" for r in results.items)
    assert service.host.stats.dropped == 3 and service.host.stats.analyzed == 0


async def test_paced_frames_are_never_too_old(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results, running: Any
) -> None:
    """A lossless camera's frames (a file) are analysed however long they waited."""
    ctx = context(bus, nats_settings, {"analyzers": {"motion": {}}, "max_frame_age_s": 5})
    service = DetectorService(ctx)
    await running(service)
    await publish_frames(bus, "file", bikes[:3], age_s=60, paced=True)
    await wait_for(lambda: len(results.items) == 3, 20, "three results")
    assert not any(r.skipped for r in results.items)
    assert service.host.stats.dropped == 0 and service.host.stats.analyzed == 3


async def test_unknown_analyzer_is_a_config_error(bus: Bus, nats_settings: NatsSettings) -> None:
    with pytest.raises(ConfigError, match="no analyzer named 'nope'"):
        DetectorService(context(bus, nats_settings, {"analyzers": {"nope": {}}}))


async def test_bad_analyzer_config_names_the_field(bus: Bus, nats_settings: NatsSettings) -> None:
    with pytest.raises(ConfigError, match="min_area"):
        DetectorService(context(bus, nats_settings, {"analyzers": {"motion": {"min_area": 5}}}))
