"""Overload: 8 real-time cameras at 25 fps into an analyzer that manages a quarter of that.

Eight cameras play bikes.mp4 (640x272, 25 fps) in a loop with
``pacing: realtime``, 200 frames/s offered, into the detector running one
analyzer, ``slow``: a test analyzer defined in this module and registered
explicitly through the plugin manager (``plugin_modules: [overload]``) that
spends ``cost_s`` per frame asleep (20 ms: at most 50 frames/s, a quarter of
the offer, without taking CPU from the rest of the pipeline on a small
machine). The embedded pipeline runs the decoder and the detector; FRAMES
keeps its default limits (newest 32 frames per camera, discard old, 30 s
max age) and the host skips frames older than ``max_frame_age_s``: one run
with the default (10 s, so the stream's limit bounds the backlog) and one
with 0.5 s (the host's age limit bounds it first).

What it checks:

* memory stays bounded: RSS of this process (every service) and the
  nats-server's ``mem`` from its ``/varz`` monitoring endpoint, sampled every
  0.5 s; reported after warm-up, at the end and at the maximum;
* the newest frames are analysed: the age of each analysed frame when its
  result was stored (DETECTIONS stream timestamp - ``Frame.capture_time``),
  p50/p99/max for the first and the second half of the run (the frames
  analysed while the backlog drains after the cameras stop are reported
  apart: they wait longer, by design, and nothing newer competes with them);
* every frame is accounted for, each term counted by its own source::

      decoded = analyzed + dropped_too_old + discarded_by_stream + dropped_at_decoder

  ``decoded``: frames the FRAMES stream stored (its last sequence: one
  stream, fresh server, only these cameras) plus ``dropped_at_decoder``;
  ``dropped_at_decoder``: frames a real-time camera decoded but did not
  publish because its publish queue was full; ``analyzed`` and
  ``dropped_too_old``: AnalysisResults of ``slow`` stored in DETECTIONS, not
  skipped / skipped as "too old" (the host answers every frame it fetches);
  ``discarded_by_stream``: FRAMES stream sequences that never got a result
  (the stream discarded them, newer frames of the same camera pushed them
  out, before the consumer delivered them). Cross-checks: consumer
  deliveries (minus redeliveries) = frames the host fetched = results seen =
  analyzed + dropped_too_old by the host's own counters.

The decoder's own ``frames_published`` (final status records, written when
the cameras are disabled at the end) is reported next to the stream's count:
it comes out lower by ``unsettled_at_stop``, the frames a camera had sent but
whose PubAck it had not settled when it was stopped (up to ``pacing_window``
per camera; ``CameraWorker.stop`` cancels the publisher without settling
them), and it cannot see the at most ``queue_frames`` decoded frames per
camera still queued for publishing at that moment. That is why ``decoded``
is taken from the stream.

At the end the cameras are disabled in the registry, the decoder stops them
(writing their final status), and the detector drains what is left before
counting.

Run: ``.venv/bin/python bench/overload.py [--smoke]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from camsight.analyzers import (
    KIND_OBJECTS,
    AnalyzerConfig,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
    hookimpl,
)
from camsight.bus import subjects
from camsight.cameras import CameraConfig, Pacing
from camsight.run import EmbeddedPipeline
from camsight.v1 import analysis_pb2, camera_pb2
from decoder import bikes_path, rss_mib
from latency import percentiles, stamp
from nats.aio.msg import Msg
from pipeline import nats_varz, quiet, service, settings
from pydantic import Field

CAMERAS = 8
COST_S = 0.02
SERVICES = ("camsight.decoder.service:DecoderService", "camsight.detector.service:DetectorService")


class SlowConfig(AnalyzerConfig):
    cost_s: float = Field(default=COST_S, ge=0, le=10, description="seconds spent per frame")


class SlowAnalyzer(FrameAnalyzer):
    """Benchmark-only: sleeps ``cost_s`` per frame and finds nothing (a model slower than its input)."""

    name = "slow"
    kind = KIND_OBJECTS
    Config = SlowConfig

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        assert isinstance(self.config, SlowConfig)
        time.sleep(self.config.cost_s * len(images))
        return [[] for _ in images]


@hookimpl
def camsight_analyzers() -> Sequence[type[FrameAnalyzer]]:
    return [SlowAnalyzer]


async def decoder_counts(pipe: EmbeddedPipeline, cameras: Sequence[str]) -> dict[str, int]:
    """Frames published and dropped by the decoder: the final status records of the stopped cameras."""
    statuses = await pipe.statuses(cameras)
    stopped = [s for s in statuses.values() if s.state == camera_pb2.CAMERA_STATE_STOPPED]
    states = {c: camera_pb2.CameraState.Name(s.state) for c, s in statuses.items()}
    assert len(stopped) == len(cameras), f"a camera did not report its final status: {states}"
    return {
        "published": sum(s.frames_published for s in stopped),
        "dropped": sum(s.frames_dropped for s in stopped),
    }


class Results:
    """Every AnalysisResult of ``slow``: stream sequence -> outcome, and analysed frames' ages."""

    def __init__(self) -> None:
        self.outcome: dict[int, str] = {}
        self.ages: list[tuple[float, float]] = []  # (stored, age)

    async def on_result(self, msg: Msg) -> None:
        result = analysis_pb2.AnalysisResult.FromString(msg.data)
        if result.analyzer != SlowAnalyzer.name:
            return
        if result.skipped:
            self.outcome[result.frame.stream_sequence] = result.skip_reason
        else:
            self.outcome[result.frame.stream_sequence] = "analyzed"
            stored = stamp(msg)
            self.ages.append((stored, stored - result.frame.capture_time.ToNanoseconds() / 1e9))


def memory(samples: list[tuple[float, float]], warm: int) -> dict[str, float]:
    values = [v for _, v in samples]
    return {
        "after_warmup": round(values[min(warm, len(values) - 1)], 1),
        "end": round(values[-1], 1),
        "max": round(max(values), 1),
    }


async def measure(duration: float, max_age: float, workdir: Path) -> dict[str, Any]:
    config = settings({"slow": {"cost_s": COST_S}}, max_frame_age_s=max_age, plugin_modules=["overload"])
    ids = [f"ov{i}" for i in range(CAMERAS)]
    cameras = [CameraConfig(id=c, source=str(bikes_path()), loop=True, pacing=Pacing.REALTIME) for c in ids]
    results = Results()
    rss: list[tuple[float, float]] = []
    server_mem: list[tuple[float, float]] = []
    async with EmbeddedPipeline(config, workdir, services=SERVICES) as pipe:
        host = service(pipe, "detector").host
        sub = await pipe.bus.js.subscribe(
            subjects.DETECTIONS_ALL, cb=results.on_result, ordered_consumer=True
        )
        await pipe.add_cameras(cameras)
        await all_online(pipe, ids)
        started = time.time()
        while time.time() - started < duration:
            await asyncio.sleep(0.5)
            rss.append((time.time(), rss_mib()))
            varz = await asyncio.to_thread(nats_varz, pipe)
            server_mem.append((time.time(), varz["mem"] / 2**20))
        await pipe.add_cameras([c.model_copy(update={"enabled": False}) for c in cameras])
        await wait_until_drained(pipe, ids, host, results)
        stream = await pipe.bus.js.stream_info(subjects.FRAMES_STREAM)
        consumer = await pipe.bus.js.consumer_info(subjects.FRAMES_STREAM, "detector")
        await sub.unsubscribe()
        counts = await decoder_counts(pipe, ids)
    return account(
        duration, started, counts, stream.state.last_seq, consumer, host.stats, results, rss, server_mem
    )


async def all_online(pipe: EmbeddedPipeline, cameras: Sequence[str], timeout: float = 60) -> None:
    """Until every camera reports ONLINE: the measured window starts with the full load."""
    deadline = time.time() + timeout
    while True:
        statuses = await pipe.statuses(cameras)
        if len(statuses) == len(cameras) and all(
            s.state == camera_pb2.CAMERA_STATE_ONLINE for s in statuses.values()
        ):
            return
        if time.time() > deadline:
            raise TimeoutError(f"overload: cameras not online after {timeout:.0f}s")
        await asyncio.sleep(0.1)


async def wait_until_drained(
    pipe: EmbeddedPipeline, cameras: Sequence[str], host: Any, results: Results, timeout: float = 60
) -> None:
    """Until every camera stopped, FRAMES is still and the detector answered every frame it fetched."""
    last, steady, deadline = -1, 0, time.time() + timeout
    while steady < 3:
        if time.time() > deadline:
            states = {c: s.state for c, s in (await pipe.statuses(cameras)).items()}
            raise TimeoutError(f"overload: not drained after {timeout:.0f}s (camera states {states})")
        await asyncio.sleep(0.25)
        info = await pipe.bus.js.consumer_info(subjects.FRAMES_STREAM, "detector")
        seq = (await pipe.bus.js.stream_info(subjects.FRAMES_STREAM)).state.last_seq
        idle = not info.num_pending and not info.num_ack_pending and len(results.outcome) == host.stats.frames
        statuses = await pipe.statuses(cameras)
        idle = idle and all(
            c in statuses and statuses[c].state == camera_pb2.CAMERA_STATE_STOPPED for c in cameras
        )
        steady = steady + 1 if idle and seq == last else 0
        last = seq


def account(
    duration: float,
    started: float,
    counts: dict[str, int],
    last_seq: int,
    consumer: Any,
    stats: Any,
    results: Results,
    rss: list[tuple[float, float]],
    server_mem: list[tuple[float, float]],
) -> dict[str, Any]:
    analyzed = sum(1 for o in results.outcome.values() if o == "analyzed")
    too_old = sum(1 for o in results.outcome.values() if o == "too old")
    other = len(results.outcome) - analyzed - too_old
    discarded = sum(1 for seq in range(1, last_seq + 1) if seq not in results.outcome)
    decoded = last_seq + counts["dropped"]
    delivered = consumer.delivered.consumer_seq - (consumer.num_redelivered or 0)
    half, end = started + duration / 2, started + duration  # after ``end``: the final drain
    warm = max(1, len(rss) // 10)
    return {
        "cameras": CAMERAS,
        "offered_fps": CAMERAS * 25,
        "seconds": duration,
        "decoded": decoded,
        "analyzed": analyzed,
        "dropped_too_old": too_old,
        "discarded_by_stream": discarded,
        "dropped_at_decoder": counts["dropped"],
        "other_outcomes": other,
        "balanced": decoded == analyzed + too_old + discarded + counts["dropped"] and other == 0,
        "published_per_decoder_status": counts["published"],
        "published_per_stream": last_seq,
        "unsettled_at_stop": last_seq - counts["published"],
        "checks": {
            "consumer_delivered_equals_host_fetched": delivered == stats.frames,
            "host_fetched_equals_results": stats.frames == len(results.outcome),
            "host_counters_agree": (stats.analyzed, stats.dropped) == (analyzed, too_old),
        },
        "analyzed_fps": round(sum(1 for t, _ in results.ages if t < started + duration) / duration, 1),
        "age_first_half": percentiles([a for t, a in results.ages if t < half]),
        "age_second_half": percentiles([a for t, a in results.ages if half <= t < end]),
        "age_max_s": round(max((a for t, a in results.ages if t < end), default=0.0), 3),
        "age_during_drain": percentiles([a for t, a in results.ages if t >= end]),
        "rss_mib": memory(rss, warm),
        "nats_server_mem_mib": memory(server_mem, warm),
        "rss_mib_every_10s": [round(v, 1) for _, v in rss[::20]],
        "nats_server_mem_mib_every_10s": [round(v, 1) for _, v in server_mem[::20]],
        "rss_growth_after_warmup_mib": round(
            float(np.max([v for _, v in rss[warm:]])) - rss[warm][1] if len(rss) > warm else 0.0, 1
        ),
    }


def run(smoke: bool = False) -> dict[str, Any]:
    """Smoke: 2 s with the default max_frame_age_s; full: 120 s with it and 120 s with 0.5 s."""
    quiet()
    result: dict[str, Any] = {"smoke": smoke, "cost_s_per_frame": COST_S}
    for max_age in (10.0,) if smoke else (10.0, 0.5):
        with tempfile.TemporaryDirectory() as tmp:
            figures = asyncio.run(measure(2.0 if smoke else 120.0, max_age, Path(tmp)))
        result[f"max_frame_age_{max_age:g}s"] = figures
    return result


if __name__ == "__main__":
    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))
