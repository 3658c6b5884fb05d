"""Latency from capture to event at steady state, per stage, with a real-time source.

The source is a generated video (320x240, 25 fps, 2 s, looped): a textured
block bounces left and right across two counting lines, so the ``motion``
analyzer sees it in every frame and the behavior service's ``line_cross``
rule fires about twice a second. The camera uses ``pacing: realtime`` (the
decoder plays the file at its media rate, like a live camera). The embedded
pipeline runs the decoder, detector (``motion`` only, so analysis keeps up:
this measures the architecture, not an overloaded model), behavior and
query services in this process; one clock (this machine's) stamps
everything. Stages, and exactly how each is measured:

* ``decode``: OpenCV grab/retrieve + resize + JPEG encode of one frame of the
  same video, timed per frame by a bare loop in the same run. The decoder
  stamps ``Frame.capture_time`` *after* this work (a file played in real time
  is decoded ahead and released at its due time), so the stages below do not
  contain it: the capture -> event figure of a live camera is ``decode`` plus
  ``total``.
* ``bus_frames``: FRAMES stream timestamp of the frame (the time the
  nats-server stored it, read from the message metadata by an ordered
  consumer of this benchmark) - ``Frame.capture_time``: the decoder's queue,
  protobuf, publish.
* ``analysis``: DETECTIONS stream timestamp of the frame's AnalysisResult -
  FRAMES stream timestamp: fetch (including the dynamic batcher's wait of up
  to ``fetch_timeout_s`` to fill a batch), JPEG decode, inference, publish.
  ``inference`` is the analyzer call that frame was part of
  (``AnalysisResult.inference_time`` x ``batch_size``; the host reports the
  per-frame share).
* ``behavior``: EVENTS stream timestamp of the event - DETECTIONS stream
  timestamp of the result of the frame that produced it (the frame whose
  capture time is the event's ``update_time``): fetch, reorder, tracking,
  rules, publish.
* ``index``: the time the query service's live hub handed the event out
  (after its SQLite commit; read in-process) - EVENTS stream timestamp.
* ``total``: index time - ``Event.update_time`` (the capture time of the frame
  that produced the event).

Frames and events of the first ``warmup`` seconds are left out (steady state).

Run: ``.venv/bin/python bench/latency.py [--smoke]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from camsight.bus import subjects
from camsight.cameras import CameraConfig, Line, Pacing, Rule, RuleType
from camsight.decoder.frames import resize_and_encode
from camsight.run import EmbeddedPipeline
from camsight.v1 import analysis_pb2, event_pb2, frame_pb2
from nats.aio.msg import Msg
from pipeline import quiet, service, settings

FPS = 25
SIZE = (320, 240)
CAMERA = "line"
SERVICES = (
    "camsight.decoder.service:DecoderService",
    "camsight.detector.service:DetectorService",
    "camsight.behavior.service:BehaviorService",
    "camsight.query.service:QueryService",
)


def bouncing_block(path: Path, seconds: float = 2.0) -> Path:
    """A 48x64 textured block crossing the frame and back once per ``seconds`` (loops cleanly)."""
    width, height = SIZE
    rng = np.random.default_rng(1)
    block = rng.integers(96, 255, (64, 48, 3), dtype=np.uint8)
    frames = round(seconds * FPS)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, SIZE)
    span = width - 2 * 16 - block.shape[1]
    for i in range(frames):
        phase = 2 * i / frames  # 0..2: out and back
        x = 16 + round(span * (phase if phase <= 1 else 2 - phase))
        image = np.full((height, width, 3), 30, dtype=np.uint8)
        image[88 : 88 + 64, x : x + 48] = block
        writer.write(image)
    writer.release()
    return path


def camera(path: Path) -> CameraConfig:
    lines = [Line(id=f"l{i}", a=(x, 0.1), b=(x, 0.9)) for i, x in enumerate((0.35, 0.65))]
    rules = [
        Rule(id=f"cross{i}", type=RuleType.LINE_CROSS, line=f"l{i}", labels=["motion"]) for i in range(2)
    ]
    return CameraConfig(
        id=CAMERA, source=str(path), loop=True, pacing=Pacing.REALTIME, lines=lines, rules=rules
    )


def decode_times(path: Path, frames: int) -> list[float]:
    """Seconds per frame of the decoder's own work: grab + retrieve + resize + JPEG encode."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    times: list[float] = []
    while len(times) < frames:
        started = time.perf_counter()
        if not capture.grab():
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        _, image = capture.retrieve()
        resize_and_encode(image, 640, 640, 85)
        times.append(time.perf_counter() - started)
    capture.release()
    return times


def stamp(msg: Msg) -> float:
    """The time the stream stored ``msg`` (seconds since the epoch)."""
    return msg.metadata.timestamp.timestamp()


def seconds(ts: Any) -> float:
    return float(ts.ToNanoseconds()) / 1e9


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 and mean in milliseconds, with the sample count."""
    if not values:
        return {"n": 0}
    ms = np.asarray(values) * 1000
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }


class Recorder:
    """What every stage's messages carried, keyed by the frame's capture time (ns)."""

    def __init__(self) -> None:
        self.frames: dict[int, float] = {}  # capture ns -> FRAMES stored
        self.results: dict[int, tuple[float, float]] = {}  # capture ns -> (DETECTIONS stored, call s)
        self.events: dict[str, tuple[event_pb2.Event, float]] = {}  # id/state/rev -> (event, stored)
        self.indexed: dict[str, float] = {}  # id/state/rev -> time the index handed it out

    async def on_frame(self, msg: Msg) -> None:
        frame = frame_pb2.Frame.FromString(msg.data)
        self.frames[frame.capture_time.ToNanoseconds()] = stamp(msg)

    async def on_result(self, msg: Msg) -> None:
        result = analysis_pb2.AnalysisResult.FromString(msg.data)
        call = seconds(result.inference_time) * max(result.batch_size, 1)
        self.results[result.frame.capture_time.ToNanoseconds()] = (stamp(msg), call)

    async def on_event(self, msg: Msg) -> None:
        event = event_pb2.Event.FromString(msg.data)
        self.events[key(event)] = (event, stamp(msg))

    def stages(self, since: float) -> dict[str, Any]:
        bus, analysis, inference = [], [], []
        for capture_ns, stored in self.frames.items():
            if capture_ns / 1e9 < since or capture_ns not in self.results:
                continue
            result_stored, call = self.results[capture_ns]
            bus.append(stored - capture_ns / 1e9)
            analysis.append(result_stored - stored)
            inference.append(call)
        behavior, index, total = [], [], []
        for name, (event, stored) in self.events.items():
            capture_ns = event.update_time.ToNanoseconds()
            if capture_ns / 1e9 < since or capture_ns not in self.results or name not in self.indexed:
                continue
            behavior.append(stored - self.results[capture_ns][0])
            index.append(self.indexed[name] - stored)
            total.append(self.indexed[name] - capture_ns / 1e9)
        return {
            "bus_frames": percentiles(bus),
            "analysis": percentiles(analysis),
            "inference": percentiles(inference),
            "behavior": percentiles(behavior),
            "index": percentiles(index),
            "total": percentiles(total),
        }


def key(event: event_pb2.Event) -> str:
    return f"{event.id}/{event.state}/{event.revision}"


async def measure(path: Path, duration: float, warmup: float, workdir: Path) -> dict[str, Any]:
    rec = Recorder()
    async with EmbeddedPipeline(settings({"motion": {}}), workdir, services=SERVICES) as pipe:
        hub = service(pipe, "query").hub
        live = hub.subscribe()

        async def drain() -> None:
            while True:
                event = await live.queue.get()
                rec.indexed.setdefault(key(event), time.time())

        js = pipe.bus.js
        subs = [
            await js.subscribe(subjects.frames(CAMERA), cb=rec.on_frame, ordered_consumer=True),
            await js.subscribe(subjects.DETECTIONS_ALL, cb=rec.on_result, ordered_consumer=True),
            await js.subscribe(subjects.EVENTS_ALL, cb=rec.on_event, ordered_consumer=True),
        ]
        drainer = asyncio.create_task(drain())
        started = time.time()
        await pipe.add_cameras([camera(path)])
        await asyncio.sleep(duration)  # the load is the real-time source itself
        for sub in subs:
            await sub.unsubscribe()
        drainer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drainer
        hub.unsubscribe(live)
        statuses = await pipe.statuses([CAMERA])
    status = statuses.get(CAMERA)
    return {
        "seconds": duration,
        "frames_seen": len(rec.frames),
        "frames_dropped_at_decoder": status.frames_dropped if status else 0,
        "events": len(rec.events),
        **rec.stages(started + warmup),
    }


def run(smoke: bool = False) -> dict[str, Any]:
    """Smoke: 3 s of video (1 s warm-up); full: 60 s (5 s warm-up)."""
    quiet()
    duration, warmup = (3.0, 1.0) if smoke else (60.0, 5.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = bouncing_block(Path(tmp) / "block.mp4")
        decode = percentiles(decode_times(path, 100 if smoke else 1000))
        figures = asyncio.run(measure(path, duration, warmup, Path(tmp) / "run"))
    return {"smoke": smoke, "fps": FPS, "size": list(SIZE), "decode": decode, **figures}


if __name__ == "__main__":
    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))
