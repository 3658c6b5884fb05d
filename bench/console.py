"""The console's own cost: CPU of the query service with browsers on the live view of a 25-fps camera.

The query service runs as ``camsight serve query`` (its own process, so its CPU is read from
/proc alone) with the console on, against a private nats-server. This process publishes the
frames of ``bikes.mp4`` (640x272, re-encoded once beforehand) on ``frames.bench`` at 25 per
second with one detection result per frame, and plays N viewers that read the MJPEG stream of
``/live/bench/stream`` as a browser's ``<img>`` does. For N = 0 (baseline: the service idle
next to a 25-fps camera nobody watches), 1 and 4, it reports the service's CPU (cores) and the
frames each viewer got per second. The figure that matters is the ratio of 4 viewers to 1:
the drawing is shared per camera (decision 0056), so it should stay near 1.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import yaml
from camsight.bus import Bus, connect, subjects
from camsight.config import NatsSettings, StreamSettings
from camsight.natsserver import EmbeddedNats
from camsight.samples import sample_video
from camsight.stores.cameras import Registry
from camsight.v1 import analysis_pb2, camera_pb2, frame_pb2

FPS = 25.0
CAMERA = "bench"
TICKS = os.sysconf("SC_CLK_TCK")


def jpegs(count: int) -> list[bytes]:
    capture = cv2.VideoCapture(str(sample_video("bikes.mp4")))
    out = []
    while len(out) < count:
        ok, image = capture.read()
        if not ok:
            break
        out.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    capture.release()
    return out


def free_port() -> int:
    """A port free now (the service binds it a moment later; its own port 0 is not visible here)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def publish(bus: Bus, frames: list[bytes], stop: asyncio.Event) -> None:
    """Frames at 25/s, each with a result holding one tracked person, until ``stop``."""
    result = analysis_pb2.AnalysisResult(analyzer="hog", kind="objects")
    result.frame.camera_id = CAMERA
    result.detections.add(
        label="person", score=0.9, track_id=3, box=analysis_pb2.BoundingBox(x1=0.4, y1=0.2, x2=0.6, y2=0.9)
    )
    start, n = time.monotonic(), 0
    while not stop.is_set():
        data = frames[n % len(frames)]
        frame = frame_pb2.Frame(camera_id=CAMERA, seq=n, encoding=frame_pb2.IMAGE_ENCODING_JPEG, data=data)
        await bus.nc.publish(subjects.frames(CAMERA), frame.SerializeToString())
        await bus.nc.publish(subjects.detections("hog", CAMERA), result.SerializeToString())
        n += 1
        await asyncio.sleep(max(0.0, start + n / FPS - time.monotonic()))  # pacing, not synchronisation


async def view(url: str, counts: list[int], index: int, stop: asyncio.Event) -> None:
    """One viewer: counts the JPEG parts of the MJPEG stream."""
    async with aiohttp.ClientSession() as client, client.get(url) as stream:
        while not stop.is_set():
            chunk = await stream.content.readuntil(b"Content-Type: image/jpeg\r\n\r\n")
            if not chunk:
                return
            counts[index] += 1


async def measure(url: str, pid: int, viewers: int, seconds: float) -> dict[str, float]:
    stop = asyncio.Event()
    counts = [0] * viewers
    tasks = [asyncio.create_task(view(url, counts, i, stop)) for i in range(viewers)]
    await asyncio.sleep(1.0)  # warm-up: feeds started, first frames out
    before_counts, before_cpu, began = list(counts), cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, elapsed = cpu_seconds(pid) - before_cpu, time.monotonic() - began
    got = [c - b for c, b in zip(counts, before_counts, strict=True)]
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "cores": round(cpu / elapsed, 4),
        "frames_per_s_per_viewer": round(sum(got) / max(1, viewers) / elapsed, 2),
    }


async def _run(smoke: bool) -> dict[str, Any]:
    seconds = 3.0 if smoke else 20.0
    frames = jpegs(50 if smoke else 250)
    with tempfile.TemporaryDirectory(prefix="camsight-bench-console-") as tmp:
        work = Path(tmp)
        nats = EmbeddedNats(store_dir=work / "nats")
        await asyncio.to_thread(nats.start)
        service: asyncio.subprocess.Process | None = None
        bus = await connect(NatsSettings(servers=[nats.url]), StreamSettings(), name="bench-console")
        try:
            await bus.ensure_topology()
            await Registry(bus).put(
                camera_pb2.Camera(id=CAMERA, source_uri="rtsp://bench/live", enabled=True)
            )
            port = free_port()
            config = {
                "nats": {"servers": [nats.url]},
                "data_dir": str(work / "data"),
                "http": {"host": "127.0.0.1", "port": 0},
                "services": {"query": {"host": "127.0.0.1", "port": 0,
                                       "console": {"enabled": True, "host": "127.0.0.1", "port": port}}},
            }  # fmt: skip
            (work / "config.yaml").write_text(yaml.safe_dump(config))
            service = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "camsight", "serve", "query", "--config", str(work / "config.yaml"),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}/live/{CAMERA}/stream"
            async with aiohttp.ClientSession() as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        async with client.get(f"http://127.0.0.1:{port}/login") as response:
                            if response.status < 500:
                                break
                    except aiohttp.ClientError:
                        if time.monotonic() > deadline:
                            raise RuntimeError("the query service's console did not start") from None
                        await asyncio.sleep(0.2)
            stop = asyncio.Event()
            publisher = asyncio.create_task(publish(bus, frames, stop))
            results = {f"viewers_{n}": await measure(url, service.pid, n, seconds) for n in (0, 1, 4)}
            stop.set()
            await publisher
        finally:
            if service is not None:
                service.terminate()
                await asyncio.wait_for(service.wait(), 30)
            await bus.close()
            await asyncio.to_thread(nats.stop)
    one, four = results["viewers_1"]["cores"], results["viewers_4"]["cores"]
    return {
        **results,
        "camera_fps": FPS,
        "seconds": seconds,
        "four_vs_one_viewer_cpu": round(four / one, 3) if one else None,
    }


def run(smoke: bool = False) -> dict[str, Any]:
    return asyncio.run(_run(smoke))


if __name__ == "__main__":
    import json

    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))
