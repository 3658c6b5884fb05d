"""Pipeline efficiency: the embedded pipeline (``camsight run``) against a bare in-process loop.

Both sides process N copies of the same video (bikes.mp4, 640x272, 25 fps;
the smoke run uses a short clip of it at 320 px) with the same analyzers
(``hog`` + ``motion``, built by the plugin manager from the entry points, as
the detector builds them):

* baseline: for each copy, OpenCV decodes the file, each frame is resized to
  the analysis size exactly as the decoder does (``fit_size``), and every
  batch of 8 frames goes through each analyzer's ``analyze``, one after the
  other: what a plugin author would write with no bus, no JPEG, no services;
* pipeline: :class:`camsight.run.EmbeddedPipeline` (a private nats-server and
  the decoder, detector, behavior and query services in this process), one
  camera per copy with lossless pacing, timed from registering the cameras
  until the detector answered every frame for both analyzers.

Reported: frames/s of both and the ratio pipeline / baseline (goal >= 0.9),
and the same per CPU-second (this process, plus the nats-server for the
pipeline), with the pipeline's CPU milliseconds per frame split by thread group
(event loop, decode threads, worker threads, native threads, nats-server). ``profile=True``
runs the pipeline again under cProfile and adds the top functions by
cumulative time. Helpers for the other embedded-mode benchmarks
(latency, overload) live here too.

Run: ``.venv/bin/python bench/pipeline.py [--smoke] [--profile]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import json
import logging
import os
import pstats
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from camsight.analyzers import FrameAnalyzer, FrameInfo
from camsight.analyzers.manager import default_manager
from camsight.cameras import CameraConfig, Rule, RuleType
from camsight.config import LogSettings, Settings
from camsight.decoder.frames import fit_size
from camsight.run import EmbeddedPipeline
from camsight.runtime import setup_logging
from camsight.runtime.service import Service
from decoder import bikes_path, cpu_seconds

ANALYZERS = ("hog", "motion")
BATCH = 8
SERVICES = (
    "camsight.decoder.service:DecoderService",
    "camsight.detector.service:DetectorService",
    "camsight.behavior.service:BehaviorService",
    "camsight.query.service:QueryService",
)


def quiet() -> None:
    """Services log at INFO; a benchmark prints only its figures."""
    setup_logging(LogSettings(level="WARNING", format="text"), "bench")
    logging.getLogger().setLevel(logging.WARNING)


def write_clip(source: Path, target: Path, frames: int, width: int) -> Path:
    """The first ``frames`` frames of ``source``, resized to ``width``, as an mp4 (mp4v)."""
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer: cv2.VideoWriter | None = None
    for _ in range(frames):
        ok, image = capture.read()
        if not ok:
            break
        height, width_in = image.shape[:2]
        size = fit_size(width_in, height, width, 10_000)
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if writer is None:
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
        writer.write(image)
    capture.release()
    assert writer is not None, f"{source}: no frame"
    writer.release()
    return target


def video_frames(path: Path, max_size: int = 640) -> Iterator[np.ndarray]:
    """Decoded frames resized like the decoder does (fit within max_size x max_size)."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            height, width = image.shape[:2]
            size = fit_size(width, height, max_size, max_size)
            if size != (width, height):
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            yield image
    finally:
        capture.release()


def make_analyzers(names: Sequence[str]) -> list[FrameAnalyzer]:
    manager = default_manager()
    analyzers = []
    for name in names:
        analyzer = manager.create(name, device="cpu")
        assert isinstance(analyzer, FrameAnalyzer)
        analyzer.load()
        analyzers.append(analyzer)
    return analyzers


def baseline(path: Path, copies: int) -> dict[str, float]:
    """Frames/s and frames per CPU-second of decode + resize + analyzers, batch by batch."""
    analyzers = make_analyzers(ANALYZERS)
    frames = 0
    started, cpu = time.perf_counter(), time.process_time()
    for copy in range(copies):
        batch: list[np.ndarray] = []
        for image in video_frames(path):
            batch.append(image)
            if len(batch) == BATCH:
                frames += analyze(analyzers, batch, f"cam{copy}", frames)
                batch = []
        if batch:
            frames += analyze(analyzers, batch, f"cam{copy}", frames)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    for analyzer in analyzers:
        analyzer.close()
    return {"frames": frames, "fps": frames / elapsed, "fps_per_cpu_s": frames / cpu}


def analyze(analyzers: Sequence[FrameAnalyzer], images: list[np.ndarray], camera: str, seq: int) -> int:
    infos = [FrameInfo(camera, seq + i + 1, im.shape[1], im.shape[0]) for i, im in enumerate(images)]
    for analyzer in analyzers:
        analyzer.analyze(images, infos)
    return len(images)


def settings(analyzers: dict[str, dict[str, Any]], **detector: Any) -> Settings:
    """Embedded-mode settings for a benchmark: CPU analyzers, query on a free port."""
    return Settings(
        instance="bench",
        services={
            "detector": {"analyzers": analyzers, "batch": BATCH, "device": "cpu", **detector},
            "query": {"host": "127.0.0.1", "port": 0},
        },
    )


def service(pipeline: EmbeddedPipeline, name: str) -> Service:
    """The running service called ``name`` (embedded mode: all in this process)."""
    assert pipeline.runtime is not None
    found = [s for s in pipeline.runtime.services if s.name == name]
    assert found, f"no {name} service in the pipeline"
    return found[0]


def nats_varz(pipeline: EmbeddedPipeline) -> dict[str, Any]:
    """The nats-server's /varz monitoring document (memory, messages, ...)."""
    with urllib.request.urlopen(f"{pipeline.nats.monitor_url}/varz", timeout=5) as reply:
        data: dict[str, Any] = json.loads(reply.read())
    return data


async def wait_until(predicate: Any, timeout: float, what: str, poll: float = 0.05) -> float:
    """Poll ``predicate()`` until true; the perf_counter time it became true.

    The polling runs on the pipeline's event loop and its CPU counts against the
    pipeline, so it polls no faster than the figures need (±0.05 s on a ~12 s run).
    """
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"benchmark: {what} not reached after {timeout:.0f}s")
        await asyncio.sleep(poll)
    return time.perf_counter()


def task_cpu(tid: int) -> float:
    """User + system CPU seconds of thread ``tid`` of this process."""
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_group(name: str | None) -> str:
    if name is None:
        return "native_threads"  # not Python threads: OpenCV's and torch's own pools
    if name == "MainThread":
        return "event_loop"
    if name.startswith("decoder-"):
        return "decode_threads"  # OpenCV decode, resize, JPEG encode
    if name.startswith("asyncio_"):
        return "worker_threads"  # asyncio.to_thread: JPEG decode, analyzers, SQLite
    return "other_threads"


class ThreadCpu:
    """CPU seconds per group of this process' threads, from /proc/self/task/<id>/stat.

    Sampled every 0.5 s while the pipeline runs (a thread's last ~0.5 s before it
    ends can be missed; the remainder is reported as ``unsampled``). Reading
    /proc costs CPU of this process too, charged to the pipeline: hence not faster.
    """

    def __init__(self) -> None:
        self.start = self.sample()
        self.latest = dict(self.start)

    @staticmethod
    def sample() -> dict[int, tuple[str, float]]:
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
        found: dict[int, tuple[str, float]] = {}
        for entry in os.listdir("/proc/self/task"):
            tid = int(entry)
            with contextlib.suppress(OSError):  # the thread ended meanwhile
                found[tid] = (thread_group(names.get(tid)), task_cpu(tid))
        return found

    async def run(self) -> None:
        while True:
            self.latest.update(self.sample())
            await asyncio.sleep(0.5)

    def groups(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for tid, (group, cpu) in self.latest.items():
            totals[group] = totals.get(group, 0.0) + cpu - self.start.get(tid, (group, 0.0))[1]
        return totals


async def pipeline_run(
    path: Path,
    copies: int,
    expected: int,
    workdir: Path,
    config: Settings | None = None,
    camera: dict[str, Any] | None = None,
    during: contextlib.AbstractContextManager[Any] | None = None,
) -> dict[str, Any]:
    """Frames/s of the embedded pipeline over ``copies`` cameras of ``path``.

    ``config``: the pipeline's settings (default: ``hog`` + ``motion`` on the CPU);
    ``camera``: extra camera settings; ``during``: entered for the timed part only
    (a sampler, e.g. of the GPU's utilisation).
    """
    config = config or settings({name: {} for name in ANALYZERS}, max_frame_age_s=0)
    analyzers = len(config.services["detector"]["analyzers"])
    rules = [Rule(id="people", type=RuleType.OBJECT_DETECTED, labels=["person"])]
    cameras = [
        CameraConfig(id=f"cam{i}", source=str(path), rules=rules, **(camera or {})) for i in range(copies)
    ]
    async with EmbeddedPipeline(config, workdir, services=SERVICES, nats_log=workdir / "nats.log") as pipe:
        host = service(pipe, "detector").host  # type: ignore[attr-defined]
        server_pid = pipe.nats.pid
        assert server_pid is not None
        threads = ThreadCpu()
        sampler = asyncio.create_task(threads.run())
        with during or contextlib.nullcontext():
            process, server_cpu = time.process_time(), cpu_seconds(server_pid)
            started = time.perf_counter()
            await pipe.add_cameras(cameras)
            ended = await wait_until(
                lambda: host.stats.analyzed >= expected * analyzers, 3600, "every frame analysed"
            )
            process, server_cpu = time.process_time() - process, cpu_seconds(server_pid) - server_cpu
        sampler.cancel()
        threads.latest.update(threads.sample())
        statuses = await pipe.wait_finished([c.id for c in cameras])
    decoded = sum(s.frames_published for s in statuses.values())
    assert decoded == expected, f"decoded {decoded} frames, the baseline {expected}"
    groups = threads.groups()
    groups["unsampled"] = process - sum(groups.values())
    groups["nats_server"] = server_cpu
    return {
        "frames": decoded,
        "fps": decoded / (ended - started),
        "fps_per_cpu_s": decoded / (process + server_cpu),
        "mean_batch": host.stats.frames / max(host.stats.batches, 1),
        "cpu_ms_per_frame": {k: round(v * 1000 / decoded, 2) for k, v in groups.items()},
    }


def profiled(path: Path, copies: int, expected: int, workdir: Path) -> tuple[dict[str, Any], str]:
    """The pipeline run under cProfile: figures (slower) and the top 25 by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    figures = asyncio.run(pipeline_run(path, copies, expected, workdir))
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    return figures, out.getvalue()


def run(smoke: bool = False, profile: bool = False) -> dict[str, Any]:
    """Smoke: 1 copy of a 24-frame 320 px clip; full: 2 copies of bikes.mp4 (500 frames)."""
    quiet()
    copies = 1 if smoke else 2
    with tempfile.TemporaryDirectory() as tmp:
        path = write_clip(bikes_path(), Path(tmp) / "clip.mp4", 24, 320) if smoke else bikes_path()
        base = baseline(path, copies)
        pipe = asyncio.run(pipeline_run(path, copies, int(base["frames"]), Path(tmp) / "run"))
        base_after = baseline(path, copies)  # bracket the pipeline run: the machine is shared
        result: dict[str, Any] = {
            "smoke": smoke,
            "copies": copies,
            "frames": pipe["frames"],
            "analyzers": list(ANALYZERS),
            "baseline_fps": round((base["fps"] + base_after["fps"]) / 2, 2),
            "pipeline_fps": round(pipe["fps"], 2),
            "baseline_fps_per_cpu_s": round((base["fps_per_cpu_s"] + base_after["fps_per_cpu_s"]) / 2, 2),
            "pipeline_fps_per_cpu_s": round(pipe["fps_per_cpu_s"], 2),
            "mean_batch": round(pipe["mean_batch"], 2),
        }
        result["baseline_cpu_ms_per_frame"] = round(
            2000 / (base["fps_per_cpu_s"] + base_after["fps_per_cpu_s"]), 2
        )
        result["pipeline_cpu_ms_per_frame"] = pipe["cpu_ms_per_frame"]
        result["ratio"] = round(result["pipeline_fps"] / result["baseline_fps"], 3)
        result["ratio_per_cpu_s"] = round(
            result["pipeline_fps_per_cpu_s"] / result["baseline_fps_per_cpu_s"], 3
        )
        if profile:
            figures, top = profiled(path, copies, int(base["frames"]), Path(tmp) / "profiled")
            result["profiled_pipeline_fps"] = round(figures["fps"], 2)
            result["profile_top"] = top
    return result


if __name__ == "__main__":
    print(json.dumps(run(smoke="--smoke" in sys.argv, profile="--profile" in sys.argv), indent=2))
