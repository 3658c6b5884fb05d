"""The bus alone: Frames per second through JetStream, camsight's Bus against raw nats-py.

One camera's frames (a real 640x272 JPEG of bikes.mp4, about 20 KB, in a
``camsight.v1.Frame``) are published to the FRAMES stream of a real
nats-server (memory storage, the topology camsight declares) in five ways,
in this process, one after the other:

* ``bus_acked``: ``Bus.publish(subject, Frame)`` awaiting each PubAck (the
  protobuf is serialised on every call);
* ``bus_pipelined``: the same with up to ``WINDOW`` publishes in flight (what
  the decoder does with ``pacing_window``);
* ``raw_acked`` / ``raw_pipelined``: ``js.publish`` of the already
  serialised bytes (the baseline for the two above: same bytes, no camsight);
* ``core``: core NATS ``nc.publish`` of the same bytes and one flush at the
  end (no persistence, no acks: the ceiling of the connection).

Reported: frames/s of each, ``bus_acked / raw_acked`` and
``bus_pipelined / raw_pipelined`` (the cost of camsight's layer, goal ~1),
and the JetStream rates as fractions of core NATS.

``--size=1080p`` publishes a 1920x1080 frame instead (about 200 KB), to find
where the bus becomes the limit for full-HD cameras (issue 23, decision 0075).

Run: ``.venv/bin/python bench/bus.py [--smoke] [--size=1080p]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from camsight.bus import Bus, connect, subjects
from camsight.config import NatsSettings, StreamSettings
from camsight.natsserver import EmbeddedNats
from camsight.v1 import frame_pb2
from decoder import bikes_path

WINDOW = 64


SIZES = {"640x272": None, "1080p": (1920, 1080)}


def sample_frame(size: str = "640x272") -> frame_pb2.Frame:
    """The bikes frame as the decoder publishes it; ``1080p``: scaled up, with sensor-like noise
    so that the JPEG is about as big as a real 1080p street scene's (about 200 KB at quality 85)."""
    capture = cv2.VideoCapture(str(bikes_path()))
    for _ in range(100):  # a frame with the cyclists in it
        ok, image = capture.read()
        assert ok
    capture.release()
    if (wh := SIZES[size]) is not None:
        image = cv2.resize(image, wh, interpolation=cv2.INTER_CUBIC)
        noise = np.random.default_rng(0).normal(0.0, 4.0, image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    _, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    height, width = image.shape[:2]
    frame = frame_pb2.Frame(camera_id="bus", seq=1, width=width, height=height, data=jpeg.tobytes())
    frame.encoding = frame_pb2.IMAGE_ENCODING_JPEG
    frame.capture_time.GetCurrentTime()
    return frame


async def pipelined(count: int, publish: Callable[[int], Awaitable[Any]]) -> None:
    """``count`` publishes with at most ``WINDOW`` awaiting their acks at any time."""
    pending: set[asyncio.Future[Any]] = set()
    for i in range(count):
        if len(pending) >= WINDOW:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        pending.add(asyncio.ensure_future(publish(i)))
    for task in pending:
        await task


async def timed(count: int, body: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await body()
    return count / (time.perf_counter() - started)


async def measure(bus: Bus, count: int, size: str) -> dict[str, float]:
    frame = sample_frame(size)
    payload = frame.SerializeToString()
    subject = subjects.frames(frame.camera_id)
    js, nc = bus.js, bus.nc

    def bus_one(i: int) -> Awaitable[Any]:
        frame.seq = i + 1
        return bus.publish(subject, frame)

    def raw_one(_i: int) -> Awaitable[Any]:
        return js.publish(subject, payload)

    async def serial(one: Callable[[int], Awaitable[Any]]) -> None:
        for i in range(count):
            await one(i)

    async def core() -> None:
        for _ in range(count):
            await nc.publish("bench.core", payload)
        await nc.flush()

    await serial(raw_one)  # warm-up: stream, connection buffers
    rates: dict[str, float] = {}
    modes: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("raw_acked", lambda: serial(raw_one)),
        ("bus_acked", lambda: serial(bus_one)),
        ("raw_pipelined", lambda: pipelined(count, raw_one)),
        ("bus_pipelined", lambda: pipelined(count, bus_one)),
        ("core", core),
    ]
    for round_ in range(3):  # best of three, the order reversed every other round: the machine is shared
        for name, body in modes if round_ % 2 == 0 else modes[::-1]:
            rates[name] = max(rates.get(name, 0.0), await timed(count, body))
    rates["consume"] = await consume(bus, payload, count)
    return rates


async def consume(bus: Bus, payload: bytes, count: int) -> float:
    """Frames/s an analyzer host's pull consumer gets out of FRAMES (fetch 64, ack each), timed
    from the first fetch; the frames are spread over enough cameras that none is evicted."""
    cameras = count // 16 + 1  # at most 16 per camera, under the 32 the stream keeps
    await pipelined(count, lambda i: bus.js.publish(subjects.frames(f"consume-{i % cameras}"), payload))
    sub = await bus.js.pull_subscribe(
        subjects.FRAMES_ALL, durable="bench-consume", stream=subjects.FRAMES_STREAM
    )
    got, started = 0, time.perf_counter()
    while got < count:
        msgs = await sub.fetch(WINDOW, timeout=5)
        await asyncio.gather(*(m.ack() for m in msgs))
        got += len(msgs)
    rate = got / (time.perf_counter() - started)
    await sub.unsubscribe()
    return rate


async def _run(count: int, size: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedNats(store_dir=Path(tmp) / "js")
        server.start()
        try:
            # the default limits: the stream keeps the newest 32 frames per camera, as in use
            bus = await connect(NatsSettings(servers=[server.url]), StreamSettings(), name="bench-bus")
            await bus.ensure_topology()
            try:
                rates = await measure(bus, count, size)
            finally:
                await bus.close()
        finally:
            server.stop()
    frame_bytes = len(sample_frame(size).SerializeToString())
    return {
        "frames": count,
        "size": size,
        "frame_bytes": frame_bytes,
        "raw_pipelined_mb_per_s": round(rates["raw_pipelined"] * frame_bytes / 1e6, 1),
        "window": WINDOW,
        **{f"{k}_fps": round(v, 1) for k, v in rates.items()},
        "consume_mb_per_s": round(rates["consume"] * frame_bytes / 1e6, 1),
        "ratio_bus_vs_raw_acked": round(rates["bus_acked"] / rates["raw_acked"], 3),
        "ratio_bus_vs_raw_pipelined": round(rates["bus_pipelined"] / rates["raw_pipelined"], 3),
        "ratio_raw_acked_vs_core": round(rates["raw_acked"] / rates["core"], 3),
        "ratio_raw_pipelined_vs_core": round(rates["raw_pipelined"] / rates["core"], 3),
    }


def run(smoke: bool = False, size: str = "640x272") -> dict[str, Any]:
    """Smoke: 300 frames per mode; full: 5,000 (1,000 at 1080p)."""
    count = 300 if smoke else (5000 if size == "640x272" else 1000)
    return asyncio.run(_run(count, size))


if __name__ == "__main__":
    size = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--size=")), "640x272")
    print(json.dumps(run(smoke="--smoke" in sys.argv, size=size), indent=2))
