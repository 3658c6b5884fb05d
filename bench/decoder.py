"""Decoder benchmark: publish rate against a bare decode loop, and memory over a looped run.

* Rate: the decoder service decodes bikes.mp4 (640x272, 250 frames) at full
  speed (lossless pacing, one fast pacing consumer acking every frame) and
  publishes every frame to a real nats-server; the baseline is a bare
  in-process loop doing the same decode, resize and JPEG encode with no bus.
  Both run in this process on the same machine, one after the other, and the
  ratio decoder / baseline is reported (goal: >= 0.9).
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
from pathlib import Path
from typing import Any

import cv2
from camsight.bus import Bus, connect, subjects
from camsight.cameras import CameraConfig
from camsight.config import NatsSettings, Settings
from camsight.decoder.frames import resize_and_encode
from camsight.decoder.service import DecoderService
from camsight.natsserver import EmbeddedNats
from camsight.runtime import ServiceContext
from camsight.samples import sample_video
from camsight.v1 import camera_pb2


def bikes_path() -> Path:
    return sample_video("bikes.mp4")


def baseline(path: Path, repeats: int, max_size: int = 640, quality: int = 85) -> tuple[float, float]:
    """Frames per second of a bare decode + resize + encode loop, and CPU ms per frame."""
    frames = 0
    cpu = time.process_time()
    started = time.perf_counter()
    for _ in range(repeats):
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


class ThreadCpu:
    """CPU seconds per thread of this process, sampled while a run goes on (threads that
    end would take their counts with them). Splits the event loop (the main thread) from
    the decode threads (the decoder's and FFmpeg's)."""

    def __init__(self) -> None:
        self.start = self._read()
        self.last: dict[int, float] = dict(self.start)

    @staticmethod
    def _read() -> dict[int, float]:
        out = {}
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                out[int(tid)] = cpu_seconds_of(f"/proc/self/task/{tid}/stat")
        return out

    def sample(self) -> None:
        self.last.update(self._read())

    def split(self) -> tuple[float, float]:
        """(main thread, every other thread) CPU seconds since construction."""
        used = {tid: cpu - self.start.get(tid, 0.0) for tid, cpu in self.last.items()}
        main = used.pop(os.getpid(), 0.0)
        return main, sum(used.values())


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


async def status(bus: Bus, camera: str) -> camera_pb2.CameraStatus | None:
    kv = await bus.kv(subjects.CAMERA_STATUS_BUCKET)
    try:
        return camera_pb2.CameraStatus.FromString((await kv.get(camera)).value or b"")
    except Exception:
        return None


async def decoder_run(
    nats: NatsSettings, camera: CameraConfig, duration_s: float | None, threads: ThreadCpu | None = None
) -> dict[str, Any]:
    """Run one decoder on ``camera``: until the file ends, or for ``duration_s`` (looped)."""
    settings = Settings(nats=nats, cameras=[camera], instance="bench")
    bus = await connect(settings.nats, settings.streams, name="bench")
    await bus.ensure_topology()
    consumer = await fast_consumer(nats.servers[0])
    consumer_start_cpu = cpu_seconds(consumer.pid)  # its imports and connect are not per frame
    ctx = ServiceContext(settings=settings)
    ctx.attach(bus)
    service = DecoderService(ctx)
    await service.start()
    runner = asyncio.create_task(service.run())
    rss: list[float] = []
    first: float | None = None
    started = time.perf_counter()
    result: dict[str, Any] = {}
    while True:
        await asyncio.sleep(0.05 if duration_s is None else 1.0)
        if threads is not None:
            threads.sample()
        now = await status(bus, camera.id)
        if now is None:
            continue
        if first is None and now.frames_published:
            first = time.perf_counter()
        if duration_s is not None:
            rss.append(rss_mib())
            if time.perf_counter() - started >= duration_s:
                result = {"frames": now.frames_published, "rss_mib": rss}
                break
        elif now.state == camera_pb2.CAMERA_STATE_ENDED:
            elapsed = time.perf_counter() - (first or started)
            result = {"frames": now.frames_published, "fps": now.frames_published / elapsed}
            break
    # Leave the registry as we found it: a camera left there would be decoded again, beside
    # the next run's, by the next run's decoder (the registry outlives a service).
    await (await bus.kv(subjects.CAMERAS_BUCKET)).delete(camera.id)
    ctx.stopping.set()
    await runner
    await service.close()
    result["consumer_cpu_s"] = cpu_seconds(consumer.pid) - consumer_start_cpu
    consumer.terminate()
    await consumer.wait()
    await bus.close()
    return result


async def decoder_rate(nats: NatsSettings, path: Path, repeats: int, server_pid: int) -> dict[str, float]:
    """Mean publish rate over ``repeats`` runs, with the CPU it cost (this process, the server)."""
    rates, frames, consumer_cpu = [], 0, 0.0
    cpu, server_cpu = time.process_time(), cpu_seconds(server_pid)
    threads = ThreadCpu()
    for i in range(repeats):
        camera = CameraConfig(id=f"rate{i}", source=str(path))
        result = await decoder_run(nats, camera, None, threads)
        rates.append(result["fps"])
        frames += result["frames"]
        consumer_cpu += result["consumer_cpu_s"]
    main, decode = threads.split()
    return {
        "fps": sum(rates) / len(rates),
        "cpu_ms_per_frame": (time.process_time() - cpu) * 1000 / frames,
        "main_thread_cpu_ms_per_frame": main * 1000 / frames,
        "decode_threads_cpu_ms_per_frame": decode * 1000 / frames,
        "server_cpu_ms_per_frame": (cpu_seconds(server_pid) - server_cpu) * 1000 / frames,
        "consumer_cpu_ms_per_frame": consumer_cpu * 1000 / frames,
    }


def run(smoke: bool = False, loop_seconds: float | None = None) -> dict[str, Any]:
    """Smoke: one rate run and a 3 s loop; full: four rate runs and a 10-minute loop."""
    path = bikes_path()
    repeats = 1 if smoke else 4
    duration = loop_seconds or (3.0 if smoke else 600.0)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedNats(store_dir=Path(tmp) / "js")
        server.start()
        try:
            nats = NatsSettings(servers=[server.url])
            assert server._proc is not None
            base, base_cpu = baseline(path, repeats)
            rate = asyncio.run(decoder_rate(nats, path, repeats, server._proc.pid))
            base_after, base_cpu_after = baseline(path, repeats)  # bracket the decoder run: machine noise
            looped = asyncio.run(
                decoder_run(nats, CameraConfig(id="loop", source=str(path), loop=True), duration)
            )
        finally:
            server.stop()
    baseline_fps = (base + base_after) / 2
    rss = looped["rss_mib"]
    warm = rss[min(len(rss) - 1, max(1, len(rss) // 10))]
    return {
        "smoke": smoke,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "baseline_fps": round(baseline_fps, 1),
        "decoder_fps": round(rate["fps"], 1),
        "ratio": round(rate["fps"] / baseline_fps, 3),
        "baseline_cpu_ms_per_frame": round((base_cpu + base_cpu_after) / 2, 3),
        "decoder_cpu_ms_per_frame": round(rate["cpu_ms_per_frame"], 3),
        # The decode path alone (decoder + FFmpeg threads) against the bare loop: what the
        # rate tends to where the event loop and the server have cores of their own.
        "decoder_decode_threads_cpu_ms_per_frame": round(rate["decode_threads_cpu_ms_per_frame"], 3),
        "decoder_event_loop_cpu_ms_per_frame": round(rate["main_thread_cpu_ms_per_frame"], 3),
        "decode_path_cpu_ratio": round(
            (base_cpu + base_cpu_after) / 2 / max(rate["decode_threads_cpu_ms_per_frame"], 1e-9), 3
        ),
        "nats_server_cpu_ms_per_frame": round(rate["server_cpu_ms_per_frame"], 3),
        # The stand-in analyzer (a nats-py process that fetches and acks every frame).
        "consumer_cpu_ms_per_frame": round(rate["consumer_cpu_ms_per_frame"], 3),
        "loop_seconds": duration,
        "loop_frames": looped["frames"],
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
