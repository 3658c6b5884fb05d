"""Decoder benchmark: publish rate against a bare decode loop, and memory over a looped run.

* Rate: the decoder service decodes bikes.mp4 (640x272, 250 frames, looped)
  at full speed (lossless pacing, one fast pacing consumer acking every
  frame) and publishes every frame to a real nats-server; the rate is the
  frames it published between two instants of a steady state (after a
  warm-up), counted from its own status counters. The baseline is a bare
  in-process loop doing the same decode, resize and JPEG encode with no
  bus, over as many seconds. Both run in this process, alternately (the
  baseline before and after each decoder run), and the ratio decoder /
  baseline is reported (goal: >= 0.9).
* Memory: the same camera with ``loop: true`` for ``duration_s`` (10 minutes
  for the full run, a few seconds for the smoke run); the process' RSS is
  sampled every second. Flat means the growth after warm-up stays small.

Run: ``.venv/bin/python bench/decoder.py [--smoke] [--loop-seconds=N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
from camsight.bus import connect, subjects
from camsight.cameras import CameraConfig
from camsight.config import NatsSettings, Settings
from camsight.decoder.camera import CameraWorker
from camsight.decoder.frames import resize_and_encode
from camsight.decoder.service import DecoderService
from camsight.natsserver import EmbeddedNats
from camsight.runtime import ServiceContext
from camsight.samples import sample_video

RATE_WARMUP_S = 2.0  # decoder start, file open, first batches: not the steady state


def bikes_path() -> Path:
    return sample_video("bikes.mp4")


def baseline(path: Path, seconds: float, max_size: int = 640, quality: int = 85) -> tuple[float, float]:
    """Frames per second of a bare decode + resize + encode loop over whole passes of the
    file for about ``seconds``, and its CPU ms per frame."""
    frames = 0
    cpu = time.process_time()
    started = time.perf_counter()
    while frames == 0 or time.perf_counter() - started < seconds:
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        while capture.grab():
            ok, image = capture.retrieve()
            if ok and resize_and_encode(image, max_size, max_size, quality) is not None:
                frames += 1
        capture.release()
    return frames / (time.perf_counter() - started), (time.process_time() - cpu) * 1000 / frames


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of another process (the nats-server)."""
    return cpu_seconds_of(f"/proc/{pid}/stat")


def cpu_seconds_of(stat_path: str) -> float:
    fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


CONSUMER = """
import asyncio, sys
import nats
from nats.js.api import AckPolicy, ConsumerConfig

async def main():
    nc = await nats.connect(sys.argv[1])
    js = nc.jetstream()
    sub = await js.pull_subscribe("frames.>", durable="bench", stream="FRAMES",
        config=ConsumerConfig(durable_name="bench", ack_policy=AckPolicy.EXPLICIT, sample_freq="100%"))
    print("ready", flush=True)
    while True:
        try:
            msgs = await sub.fetch(16, timeout=0.2)
        except nats.errors.TimeoutError:
            continue
        for msg in msgs:
            await msg.ack()

asyncio.run(main())
"""


async def fast_consumer(url: str) -> asyncio.subprocess.Process:
    """An analyzer that does nothing but ack every frame (full ack sampling), in its own
    process like a real analyzer service, so it does not share the decoder's event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CONSUMER, url, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    await proc.stdout.readline()  # "ready": the pacing consumer exists
    return proc


@dataclass
class Meter:
    """What a decoder run has done and used up to one instant."""

    at: float
    frames: int  # published by the camera's worker
    process_cpu: float  # this process, ended threads included
    loop_cpu: float  # the main thread: the event loop
    server_cpu: float
    consumer_cpu: float

    @classmethod
    def read(cls, service: DecoderService, camera: str, server_pid: int, consumer_pid: int) -> Meter:
        worker = service.workers.get(camera)
        return cls(
            at=time.perf_counter(),
            frames=worker.status.published if isinstance(worker, CameraWorker) else 0,
            process_cpu=time.process_time(),
            loop_cpu=cpu_seconds_of(f"/proc/self/task/{os.getpid()}/stat"),
            server_cpu=cpu_seconds(server_pid),
            consumer_cpu=cpu_seconds(consumer_pid),
        )


async def decoder_run(
    nats: NatsSettings, camera: CameraConfig, seconds: float, server_pid: int, warmup_s: float = 0.0
) -> dict[str, Any]:
    """Run one decoder on ``camera`` for ``warmup_s + seconds``; meter the last ``seconds``
    (the steady state) and sample the RSS every second."""
    settings = Settings(nats=nats, cameras=[camera], instance="bench")
    bus = await connect(settings.nats, settings.streams, name="bench")
    await bus.ensure_topology()
    consumer = await fast_consumer(nats.servers[0])
    ctx = ServiceContext(settings=settings)
    ctx.attach(bus)
    service = DecoderService(ctx)
    await service.start()
    runner = asyncio.create_task(service.run())

    def meter() -> Meter:
        return Meter.read(service, camera.id, server_pid, consumer.pid)

    rss: list[float] = []
    started = time.perf_counter()
    first = meter() if warmup_s == 0 else None
    while time.perf_counter() - started < warmup_s + seconds:
        await asyncio.sleep(0.25)
        if first is None and time.perf_counter() - started >= warmup_s:
            first = meter()
        if len(rss) < (time.perf_counter() - started):
            rss.append(rss_mib())
    last = meter()
    # Leave the registry as we found it: a camera left there would be decoded again, beside
    # the next run's, by the next run's decoder (the registry outlives a service).
    await (await bus.kv(subjects.CAMERAS_BUCKET)).delete(camera.id)
    ctx.stopping.set()
    await runner
    await service.close()
    consumer.terminate()
    await consumer.wait()
    await bus.close()
    assert first is not None
    return {"first": first, "last": last, "rss_mib": rss}


async def decoder_rate(
    nats: NatsSettings, path: Path, runs: int, seconds: float, server_pid: int
) -> dict[str, Any]:
    """``runs`` decoder runs of a looped file, each between two baseline runs of as long."""
    bases = [baseline(path, seconds)]
    windows: list[tuple[Meter, Meter]] = []
    for i in range(runs):
        camera = CameraConfig(id=f"rate{i}", source=str(path), loop=True)
        result = await decoder_run(nats, camera, seconds, server_pid, warmup_s=RATE_WARMUP_S)
        windows.append((result["first"], result["last"]))
        bases.append(baseline(path, seconds))  # nothing else runs on the loop meanwhile

    def per_frame(field: str) -> float:
        used = sum(getattr(b, field) - getattr(a, field) for a, b in windows)
        return used * 1000 / sum(b.frames - a.frames for a, b in windows)

    rates = [(b.frames - a.frames) / (b.at - a.at) for a, b in windows]
    return {
        "baseline_fps": [fps for fps, _ in bases],
        "baseline_cpu_ms_per_frame": sum(cpu for _, cpu in bases) / len(bases),
        "decoder_fps": rates,
        "cpu_ms_per_frame": per_frame("process_cpu"),
        "loop_cpu_ms_per_frame": per_frame("loop_cpu"),
        "server_cpu_ms_per_frame": per_frame("server_cpu"),
        "consumer_cpu_ms_per_frame": per_frame("consumer_cpu"),
    }


def run(smoke: bool = False, loop_seconds: float | None = None) -> dict[str, Any]:
    """Smoke: one short rate run and a 3 s loop; full: three 8 s rate runs and a 10-minute loop."""
    path = bikes_path()
    runs, seconds = (1, 1.0) if smoke else (3, 8.0)
    duration = loop_seconds or (3.0 if smoke else 600.0)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedNats(store_dir=Path(tmp) / "js")
        server.start()
        try:
            nats = NatsSettings(servers=[server.url])
            assert server._proc is not None
            rate = asyncio.run(decoder_rate(nats, path, runs, seconds, server._proc.pid))
            looped = asyncio.run(
                decoder_run(
                    nats, CameraConfig(id="loop", source=str(path), loop=True), duration, server._proc.pid
                )
            )
        finally:
            server.stop()
    baseline_fps = sum(rate["baseline_fps"]) / len(rate["baseline_fps"])
    decoder_fps = sum(rate["decoder_fps"]) / len(rate["decoder_fps"])
    decode_threads = rate["cpu_ms_per_frame"] - rate["loop_cpu_ms_per_frame"]
    rss = looped["rss_mib"]
    warm = rss[min(len(rss) - 1, max(1, len(rss) // 10))]
    return {
        "smoke": smoke,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "rate_runs": runs,
        "rate_seconds": seconds,
        "baseline_fps": round(baseline_fps, 1),
        "decoder_fps": round(decoder_fps, 1),
        "ratio": round(decoder_fps / baseline_fps, 3),
        # Each run, to show the spread (the baseline before and after each decoder run).
        "baseline_fps_runs": [round(fps, 1) for fps in rate["baseline_fps"]],
        "decoder_fps_runs": [round(fps, 1) for fps in rate["decoder_fps"]],
        "baseline_cpu_ms_per_frame": round(rate["baseline_cpu_ms_per_frame"], 3),
        "decoder_cpu_ms_per_frame": round(rate["cpu_ms_per_frame"], 3),
        # The decode path alone (the decoder's thread and FFmpeg's) against the bare loop.
        "decoder_decode_threads_cpu_ms_per_frame": round(decode_threads, 3),
        "decoder_event_loop_cpu_ms_per_frame": round(rate["loop_cpu_ms_per_frame"], 3),
        "decode_path_cpu_ratio": round(rate["baseline_cpu_ms_per_frame"] / max(decode_threads, 1e-9), 3),
        "nats_server_cpu_ms_per_frame": round(rate["server_cpu_ms_per_frame"], 3),
        # The stand-in analyzer (a nats-py process that fetches and acks every frame).
        "consumer_cpu_ms_per_frame": round(rate["consumer_cpu_ms_per_frame"], 3),
        "loop_seconds": duration,
        "loop_frames": looped["last"].frames,
        "rss_mib_after_warmup": round(warm, 1),
        "rss_mib_end": round(rss[-1], 1),
        "rss_mib_max": round(max(rss), 1),
    }


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        seconds = [float(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--loop-seconds=")]
        print(
            json.dumps(
                run(smoke="--smoke" in sys.argv, loop_seconds=seconds[0] if seconds else None), indent=2
            )
        )
