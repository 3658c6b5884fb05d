"""Detector benchmark: the detector service through NATS against the bare plugin loop.

Both sides analyse the same JPEG frames of bikes.mp4 (640x272), in this
process, one after the other, with two sets of analyzers: the detector's
CPU defaults (HOG people + MOG2 motion; the top-level figures) and, under
``torch``, the torchvision detector (SSDlite, random weights: speed only)
with torch on one thread (issue 23's CPU acceptance: >= 0.95 per CPU-second):

* baseline: a bare loop over batches: OpenCV JPEG decode, then each
  analyzer's ``analyze`` on the batch; no bus, no protobuf;
* service: the frames are first published to FRAMES on a real nats-server
  (not timed), then the DetectorService is started and timed from its first
  fetch until every AnalysisResult (2 per frame) has been received.

The service runs twice: with the host's stages one after another
(``pipelined: false``), then pipelined (the default); both are reported, and
``pipelined_over_sequential`` is their ratio.

Reported: frames/s of both and the ratio service / baseline (goal >= 0.9), the same per
CPU-second of this process (robust to a shared machine; it also shows the bus overhead),
the batch fill (mean frames per fetched batch / configured batch) and the
per-stage seconds of the service (decode, inference per analyzer, publish).
Note the host runs the analyzers of a batch concurrently in threads; the
baseline runs them one after the other (it is the loop a plugin author
would write).

Run: ``.venv/bin/python bench/detector.py [--smoke]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
from camsight.analyzers import FrameAnalyzer, FrameInfo
from camsight.analyzers.manager import default_manager
from camsight.analyzers.pictures import decode_frame
from camsight.bus import connect, subjects
from camsight.config import NatsSettings, Settings, StreamSettings
from camsight.detector.service import DetectorService
from camsight.natsserver import EmbeddedNats
from camsight.runtime import ServiceContext
from camsight.samples import sample_video
from camsight.v1 import frame_pb2

ANALYZERS: dict[str, dict[str, Any]] = {"hog": {}, "motion": {}}
TORCH: dict[str, dict[str, Any]] = {
    "torchvision_detector": {
        "model": "ssdlite320_mobilenet_v3_large",
        "random_weights": True,
        "min_score": 0.3,
    }
}
BATCH = 8


def bikes_frames(limit: int) -> list[frame_pb2.Frame]:
    capture = cv2.VideoCapture(str(sample_video("bikes.mp4")))
    frames: list[frame_pb2.Frame] = []
    while len(frames) < limit:
        ok, image = capture.read()
        if not ok:
            break
        _, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        height, width = image.shape[:2]
        frames.append(
            frame_pb2.Frame(
                camera_id="bench",
                seq=len(frames) + 1,
                width=width,
                height=height,
                encoding=frame_pb2.IMAGE_ENCODING_JPEG,
                data=jpeg.tobytes(),
            )
        )
    capture.release()
    return frames


def same_random_weights() -> None:
    """Seed torch so every side builds the same random weights: two draws of SSDlite keep
    different numbers of boxes through NMS and differ by up to 1.5x in speed."""
    import torch

    torch.manual_seed(0)


def baseline(frames: list[frame_pb2.Frame], configs: dict[str, dict[str, Any]]) -> tuple[float, float]:
    """Frames per wall-clock second and per CPU-second of the bare decode + analyze loop."""
    manager = default_manager()
    analyzers = [manager.create(name, config, device="cpu") for name, config in configs.items()]
    same_random_weights()
    for analyzer in analyzers:
        analyzer.load()
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(frames), BATCH):
        chunk = frames[i : i + BATCH]
        images = [decode_frame(f) for f in chunk]
        infos = [FrameInfo(f.camera_id, f.seq, f.width, f.height) for f in chunk]
        for analyzer in analyzers:
            assert isinstance(analyzer, FrameAnalyzer)
            analyzer.analyze(images, infos)  # type: ignore[arg-type]
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    for analyzer in analyzers:
        analyzer.close()
    return len(frames) / elapsed, len(frames) / cpu


async def service(
    frames: list[frame_pb2.Frame], configs: dict[str, dict[str, Any]], store: Path, pipelined: bool = True
) -> dict[str, Any]:
    server = EmbeddedNats(store_dir=store / "js", log_file=store / "nats.log")
    server.start()
    try:
        nats = NatsSettings(servers=[server.url])
        streams = StreamSettings(frames_per_camera=1000, frames_max_age_s=3600)
        bus = await connect(nats, streams, name="bench")
        await bus.ensure_topology()
        for frame in frames:
            await bus.publish(subjects.frames(frame.camera_id), frame)
        received = 0
        done = asyncio.Event()

        async def on_result(_msg: Any) -> None:
            nonlocal received
            received += 1
            if received == len(frames) * len(configs):
                done.set()

        sub = await bus.nc.subscribe(subjects.DETECTIONS_ALL, cb=on_result)
        section = {
            "analyzers": configs,
            "batch": BATCH,
            "max_frame_age_s": 0,
            "device": "cpu",
            "pipelined": pipelined,
        }
        ctx = ServiceContext(Settings(nats=nats, streams=streams, services={"detector": section}))
        ctx.attach(bus)
        detector = DetectorService(ctx)
        same_random_weights()
        await detector.start()
        started, cpu = time.perf_counter(), time.process_time()
        task = asyncio.create_task(detector.run())
        await asyncio.wait_for(done.wait(), 600)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        ctx.stopping.set()
        await task
        await detector.close()
        await sub.unsubscribe()
        await bus.close()
        stats = detector.host.stats
        return {
            "fps": len(frames) / elapsed,
            "fps_cpu": len(frames) / cpu,
            "batch_fill": stats.frames / stats.batches / BATCH,
            "mean_batch": stats.frames / stats.batches,
            "stage_s": {
                "total": elapsed,
                "decode": stats.decode_s,
                **{f"inference_{k}": v for k, v in stats.inference_s.items()},
                "publish": stats.publish_s,
                "handle": stats.handle_s,
            },
        }
    finally:
        server.stop()


def compare(frames: list[frame_pb2.Frame], configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The bare loop, the sequential service and the pipelined service on the same frames."""
    base, base_cpu = baseline(frames, configs)
    with tempfile.TemporaryDirectory() as tmp:
        sequential = asyncio.run(service(frames, configs, Path(tmp) / "sequential", pipelined=False))
    with tempfile.TemporaryDirectory() as tmp:
        svc = asyncio.run(service(frames, configs, Path(tmp)))
    return {
        "frames": len(frames),
        "analyzers": list(configs),
        "batch": BATCH,
        "baseline_fps": round(base, 2),
        "service_fps": round(svc["fps"], 2),
        "ratio": round(svc["fps"] / base, 3),
        "baseline_fps_per_cpu_s": round(base_cpu, 2),
        "service_fps_per_cpu_s": round(svc["fps_cpu"], 2),
        "ratio_per_cpu_s": round(svc["fps_cpu"] / base_cpu, 3),
        "sequential_service_fps": round(sequential["fps"], 2),
        "sequential_fps_per_cpu_s": round(sequential["fps_cpu"], 2),
        "pipelined_over_sequential": round(svc["fps"] / sequential["fps"], 3),
        "batch_fill": round(svc["batch_fill"], 3),
        "mean_batch": round(svc["mean_batch"], 2),
        "stage_s": {k: round(v, 3) for k, v in svc["stage_s"].items()},
    }


def run(smoke: bool = False) -> dict[str, Any]:
    frames = bikes_frames(24 if smoke else 250)
    result = compare(frames, ANALYZERS)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # per core, as bench/gpu.py on a CPU: comparable on a shared machine
    try:
        result["torch"] = compare(frames[: 8 if smoke else 160], TORCH)
    finally:
        torch.set_num_threads(threads)
    return result


if __name__ == "__main__":
    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))
