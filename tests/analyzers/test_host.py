"""The analyzer host on a real nats-server: error isolation, clip windows, analyzer selection."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from analyzer_helpers import Results, context, make_frame, publish_frames
from camsight.analyzers import KIND_OBJECTS, Analyzer, Detection, FrameAnalyzer, FrameInfo, Image, hookimpl
from camsight.analyzers.host import AnalyzerHost, HostSettings, RepeatedErrors
from camsight.analyzers.manager import PluginManager, default_manager
from camsight.bus import Bus, subjects
from camsight.config import NatsSettings
from camsight.detector.service import DetectorService
from camsight.v1 import frame_pb2
from camsight.v1.analysis_pb2 import AnalysisResult
from helpers import wait_for


class FailsOnLoad(FrameAnalyzer):
    name = "fails_on_load"
    kind = KIND_OBJECTS

    def load(self) -> None:
        raise FileNotFoundError("weights.pt is missing")

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        raise AssertionError("never called")


class FailsOnAnalyze(FrameAnalyzer):
    name = "fails_on_analyze"
    kind = KIND_OBJECTS

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        raise ValueError("boom")


class OutOfContract(FrameAnalyzer):
    """Odd frames: a box outside the picture with a score of 1.7; even frames: a good box."""

    name = "out_of_contract"
    kind = KIND_OBJECTS

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        return [
            [Detection("thing", 1.7, (-0.2, 0.1, 1.5, 0.5))] if f.seq % 2 else [Detection("thing", 0.8)]
            for f in frames
        ]


class BrokenPlugin:
    """A deliberately broken third-party plugin, registered explicitly."""

    @hookimpl
    def camsight_analyzers(self) -> list[type[FrameAnalyzer]]:
        return [FailsOnLoad, FailsOnAnalyze, OutOfContract]


def manager() -> PluginManager:
    plugins = default_manager()
    plugins.add(BrokenPlugin(), name="broken")
    return plugins


async def test_plugin_failing_to_load_makes_the_service_not_ready_but_alive(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results, running: Any
) -> None:
    ctx = context(bus, nats_settings, {"analyzers": {"fails_on_load": {}, "motion": {}}})
    service = DetectorService(ctx, plugins=manager())
    await running(service)
    ready, reason = service.readiness()
    assert not ready and "fails_on_load failed to load: FileNotFoundError: weights.pt is missing" in reason

    await publish_frames(bus, "cam", bikes[:4])
    await wait_for(lambda: len(results.items) == 8, 20, "results of both analyzers")
    broken = results.of("fails_on_load")
    assert all(r.skipped and "weights.pt is missing" in r.skip_reason for r in broken)
    assert not any(r.skipped for r in results.of("motion"))


async def test_plugin_raising_on_a_batch_is_counted_and_the_service_goes_on(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results, running: Any
) -> None:
    ctx = context(bus, nats_settings, {"analyzers": {"fails_on_analyze": {}, "motion": {}}, "batch": 2})
    service = DetectorService(ctx, plugins=manager())
    await running(service)
    assert service.readiness() == (True, "")

    await publish_frames(bus, "cam", bikes[:6])
    await wait_for(lambda: len(results.items) == 12, 20, "results of both analyzers")
    failed = results.of("fails_on_analyze")
    assert [r.frame.seq for r in failed] == [1, 2, 3, 4, 5, 6]
    assert all(r.skipped and r.skip_reason == "analyzer failed: ValueError: boom" for r in failed)
    assert len(results.of("motion")) == 6 and not any(r.skipped for r in results.of("motion"))
    assert service.host.stats.failed == 6


async def test_a_result_out_of_contract_fails_its_frame_and_is_never_published(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results, running: Any
) -> None:
    ctx = context(bus, nats_settings, {"analyzers": {"out_of_contract": {}}, "batch": 2})
    service = DetectorService(ctx, plugins=manager())
    await running(service)
    await publish_frames(bus, "cam", bikes[:4])
    await wait_for(lambda: len(results.items) == 4, 20, "four results")
    by_seq = {r.frame.seq: r for r in results.items}
    for seq in (1, 3):
        assert by_seq[seq].skipped and not by_seq[seq].detections
        assert by_seq[seq].skip_reason.startswith("analyzer failed: invalid result: 'thing': box (-0.2")
    assert [d.score for seq in (2, 4) for d in by_seq[seq].detections] == [pytest.approx(0.8)] * 2
    assert service.host.stats.failed == 2 and service.host.stats.analyzed == 2


async def test_clip_analyzer_gets_sliding_windows(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results, running: Any
) -> None:
    section = {"analyzers": {"flow_activity": {"window": 4, "running_speed": 0.001}}, "batch": 3}
    service = DetectorService(context(bus, nats_settings, section))
    await running(service)
    await publish_frames(bus, "cam", bikes[:8])
    await wait_for(lambda: len(results.items) == 8, 20, "one result per frame")
    got = results.of("flow_activity")
    assert [r.skipped for r in got] == [True] * 3 + [False] * 5
    assert got[0].skip_reason == "no window evaluated at this frame"
    labels = {d.label for r in got for d in r.detections}
    assert "running" in labels, "the cyclists move faster than the (tiny) threshold"
    assert all(r.kind == "actions" for r in got)


async def test_frame_analyzers_field_selects_analyzers_and_malformed_frames_are_dead_lettered(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results, running: Any
) -> None:
    service = DetectorService(context(bus, nats_settings, {"analyzers": {"hog": {}, "motion": {}}}))
    await running(service)
    await bus.publish(subjects.frames("cam"), b"\xff not a protobuf")
    frame = make_frame("cam", 1, bikes[0])
    frame.analyzers.append("motion")
    await bus.publish(subjects.frames("cam"), frame)
    await wait_for(lambda: len(results.items) == 1, 20, "the motion result")
    assert results.items[0].analyzer == "motion"

    async def dead_lettered() -> bool:
        return (await bus.js.stream_info(subjects.DEADLETTER_STREAM)).state.messages == 1

    await wait_for(dead_lettered, 10, "the malformed frame in the dead-letter stream")


async def test_postprocess_hook_enriches_results_before_they_are_published(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results
) -> None:
    """How the face service reuses the host: its own consumer name and a hook run before publishing."""
    seen: list[int] = []

    async def tag(analyzer: Analyzer, images: Sequence[Image], out: Sequence[AnalysisResult]) -> None:
        seen.append(len(images))
        for result in out:
            if result.frame.seq == 4:
                raise RuntimeError("gallery unavailable")
            for det in result.detections:
                det.attributes["checked_by"] = "hook"

    settings = HostSettings(batch=2)
    ctx = context(bus, nats_settings, {})
    host = AnalyzerHost(ctx, [default_manager().create("motion", {"warmup": 1})], "face", settings, tag)
    await host.load()
    await publish_frames(bus, "cam", bikes[:6])  # before consuming: batches are (1, 2), (3, 4), (5, 6)
    task = asyncio.create_task(host.run())
    await wait_for(lambda: len(results.items) == 6, 20, "six results")
    await host.stop()
    await task
    await host.close()
    by_seq = {r.frame.seq: r for r in results.items}
    tagged = [d for seq in (1, 2, 5, 6) for d in by_seq[seq].detections]
    assert tagged and all(d.attributes["checked_by"] == "hook" for d in tagged)
    reason = "postprocess failed: RuntimeError: gallery unavailable"
    assert [by_seq[seq].skip_reason for seq in (3, 4)] == [reason, reason]  # the batch (3, 4) failed
    assert sum(seen) == 6
    info = await bus.js.consumer_info(subjects.FRAMES_STREAM, "face")
    assert info.config.sample_freq == "100%" and info.config.filter_subject == "frames.>"


async def test_the_end_marker_is_answered_by_every_analyzer_and_is_not_a_frame(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results, running: Any
) -> None:
    section = {"analyzers": {"flow_activity": {"window": 4}, "motion": {}}, "max_frame_age_s": 5}
    service = DetectorService(context(bus, nats_settings, section))
    await running(service)
    await publish_frames(bus, "cam", bikes[:5])
    await wait_for(lambda: len(results.items) == 10, 20, "one result per frame and analyzer")
    marker = frame_pb2.Frame(camera_id="cam", seq=6, end_of_stream=True)
    marker.capture_time.FromNanoseconds(int((time.time() - 60) * 1e9))  # never "too old"
    await bus.publish(subjects.frames("cam"), marker)
    await wait_for(lambda: len(results.items) == 12, 20, "both analyzers answer the marker")
    for analyzer in ("flow_activity", "motion"):
        answer = results.of(analyzer)[-1]
        assert answer.frame.end_of_stream and answer.frame.seq == 6
        assert answer.skipped and answer.skip_reason == "end of stream" and not answer.detections
    stats = service.host.stats
    assert (stats.frames, stats.dropped, stats.skipped) == (5, 0, 3)  # flow_activity's 3 warm-up frames
    assert "cam" not in service.host._windows["flow_activity"]  # the ended camera's window is freed


class Gated(FrameAnalyzer):
    """Blocks in ``analyze`` until the test opens the gate (a model busy with a batch)."""

    name = "gated"
    kind = KIND_OBJECTS

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.gate = threading.Event()
        self.calls = 0

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        self.calls += 1
        assert self.gate.wait(30), "gate never opened"
        return [[] for _ in images]


async def test_the_next_batch_is_decoded_while_an_analyzer_is_busy(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results
) -> None:
    gated = Gated()
    host = AnalyzerHost(context(bus, nats_settings, {}), [gated], "detector", HostSettings(batch=2))
    await host.load()
    await publish_frames(bus, "cam", bikes[:6])
    task = asyncio.create_task(host.run())
    # Batch (1, 2) is in the analyzer; batch (3, 4) was fetched and decoded meanwhile.
    await wait_for(lambda: gated.calls == 1 and host.stats.batches >= 2, 20, "a batch decoded ahead")
    assert host.stats.decode_s > 0 and not results.items
    gated.gate.set()
    await wait_for(lambda: len(results.items) == 6, 20, "six results")
    assert [r.frame.seq for r in results.items] == [1, 2, 3, 4, 5, 6]  # stream order kept
    await host.stop()
    await task
    await host.close()


REFUSED = "analyzer failed: invalid result: "
NOT_A_LIST = "cli_misbehaves must return a list with one list of detections per input"


@pytest.mark.parametrize(
    ("mistake", "reason"),
    [
        ("value_error", "analyzer failed: ValueError: boom at seq 25 with a second line"),
        ("short", f"{REFUSED}cli_misbehaves returned 1 results for 2 inputs"),
        (
            "flat",
            f"{REFUSED}cli_misbehaves returned Detection for input 1, not a list of detections: "
            "return one list per input ([] when nothing was found)",
        ),
        ("none", f"{REFUSED}{NOT_A_LIST}, got None"),
        ("generator", f"{REFUSED}{NOT_A_LIST}, got generator"),
        ("int_attribute", f"{REFUSED}'thing': attributes must map strings to strings, got 'n': 3"),
    ],
)
async def test_what_a_plugin_returns_is_refused_in_the_words_of_the_kit_and_the_cli(
    bus: Bus,
    nats_settings: NatsSettings,
    bikes: list[Any],
    results: Results,
    running: Any,
    mistake: str,
    reason: str,
) -> None:
    """The host, the author kit and ``camsight analyze`` check results with one function:
    a plugin author meets the same one-line reason in all three."""
    await publish_frames(bus, "cam", bikes[:2])  # before the service consumes: one batch of two
    section = {
        "analyzers": {"cli_misbehaves": {"mistake": mistake}},
        "plugin_modules": ["analyzers.cli_plugin"],
        "batch": 2,
    }
    service = DetectorService(context(bus, nats_settings, section))
    await running(service)
    await wait_for(lambda: len(results.items) == 2, 20, "both frames answered")
    assert [(r.skipped, r.skip_reason) for r in results.items] == [(True, reason)] * 2
    assert service.host.stats.failed == 2


async def test_a_failure_that_repeats_is_logged_once_then_counted(
    bus: Bus,
    nats_settings: NatsSettings,
    bikes: list[Any],
    results: Results,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One line per failed batch flooded the log (46 lines for 250 frames)."""
    await publish_frames(bus, "cam", bikes[:6])  # before consuming: six batches of one
    host = AnalyzerHost(
        context(bus, nats_settings, {}), [FailsOnAnalyze()], "detector", HostSettings(batch=1)
    )
    await host.load()
    with caplog.at_level(logging.ERROR, logger="camsight.analyzers.host"):
        task = asyncio.create_task(host.run())
        try:
            await wait_for(lambda: len(results.items) == 6, 20, "six results")
            running = [r.getMessage() for r in caplog.records]
        finally:
            await host.stop()
            await task
            await host.close()
    assert running == ["analyzer fails_on_analyze: analyze failed: ValueError: boom (batch of 1)"]
    assert len(caplog.records) == 2
    assert re.fullmatch(
        r"analyzer fails_on_analyze: analyze failed 5 more times in \d+ s; the latest: ValueError: boom "
        r"\(batch of 1\)",
        caplog.records[1].getMessage(),
    )


def test_repeated_failures_are_logged_with_their_count_at_most_once_a_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    errors = RepeatedErrors(every_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="camsight.analyzers.host"):
        for t in (0, 10, 20, 70, 80):
            now[0] = t
            errors.error("a", "analyze failed", f"boom at {t}")
        errors.error("b", "analyze failed", "other")
        now[0] = 100
        errors.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "analyzer a: analyze failed: boom at 0",
        "analyzer a: analyze failed 3 more times in 70 s; the latest: boom at 70",
        "analyzer b: analyze failed: other",
        "analyzer a: analyze failed 1 more times in 30 s; the latest: boom at 80",
    ]


class Hangs(FrameAnalyzer):
    """Never returns from ``analyze`` until the test lets it (a model stuck in a driver call)."""

    name = "hangs"
    kind = KIND_OBJECTS

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.entered = threading.Event()
        self.release = threading.Event()

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        self.entered.set()
        self.release.wait(120)
        return [[] for _ in images]


async def test_an_analyzer_call_that_never_returns_is_left_behind_when_the_host_stops(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any]
) -> None:
    """The drain waited for the call for ever: the service, and the process, could not stop."""
    hangs = Hangs()
    host = AnalyzerHost(
        context(bus, nats_settings, {}), [hangs], "detector", HostSettings(stop_timeout_s=0.5)
    )
    await host.load()
    await publish_frames(bus, "cam", bikes[:1])
    stopping = asyncio.Event()
    task = asyncio.create_task(host.run_until(stopping))
    try:
        await wait_for(hangs.entered.is_set, 20, "the analyzer inside its call")
        stopping.set()
        await asyncio.wait_for(task, 10)
        assert host.abandoned == ["analyzer hangs did not return from analyze() within 0.5 s"]
        await asyncio.wait_for(host.close(), 10)  # without closing the analyzer that is still busy
    finally:
        hangs.release.set()
