"""The whole pipeline on one device, for ``bench/gpu.py``: decode -> detect -> track -> events indexed.

A clip of bikes.mp4 scaled to 1920x1080 or kept at its 640x272 (640x360 for
``smoke`` on a CPU) and encoded as H.264 (a codec NVDEC decodes) plays on
``copies`` cameras with ``decode: nvdec`` and frames kept at that size on the
bus, through the embedded pipeline (decoder, detector with the analyzers
given: the torchvision detector or YOLOv8n, behavior, query). Reported: frames/s from registering the cameras
until every frame was analysed, cameras per device at 5 and 25 fps, what
decoded the video (NVDEC, or the CPU and why), what JPEG-encoded its frames
(nvJPEG under the decoder's ``encode: auto``, or the CPU and why: decision
0078), and the GPU's utilisation
sampled through NVML every 0.2 s while the frames flow. On a CPU-only machine
the same run is a smoke test of the script (decode falls back to the CPU).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import cv2
from camsight.decoder.nvdec import nvdec_problem
from camsight.decoder.nvjpeg import nvjpeg_problem
from camsight.decoder.sources import SourceKind
from decoder import bikes_path
from pipeline import pipeline_run, settings


class GpuUtilisation:
    """Samples the device's utilisation (NVML's, as nvidia-smi shows it) on a thread while entered."""

    def __init__(self, device: str, every_s: float = 0.2) -> None:
        self.device = device
        self.every_s = every_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuUtilisation:
        if self.device.startswith("cuda"):
            self._thread = threading.Thread(target=self._sample, name="gpu-utilisation", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _sample(self) -> None:
        import torch

        while not self._stop.wait(self.every_s):
            self.samples.append(int(torch.cuda.utilization(self.device)))

    def summary(self) -> dict[str, Any]:
        """Mean, median and maximum percentage; ``{"samples": 0}`` without a GPU."""
        if not self.samples:
            return {"samples": 0}
        return {
            "samples": len(self.samples),
            "mean_pct": round(statistics.fmean(self.samples), 1),
            "p50_pct": statistics.median(self.samples),
            "max_pct": max(self.samples),
        }


class EncodeFallbacks(logging.Handler):
    """The decoder's nvJPEG fallback warnings while attached: an encode that failed mid-run."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reasons: list[str] = []
        self._logger = logging.getLogger("camsight.decoder.nvjpeg")

    def __enter__(self) -> EncodeFallbacks:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._logger.removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.reasons.append(record.getMessage())


def encoded_by(decoded_on_gpu: bool, fallbacks: list[str]) -> str:
    """Where the decoder's ``encode: auto`` JPEG-encoded the frames: nvJPEG for NVDEC's pictures."""
    if not decoded_on_gpu:
        return "cpu (pictures decoded on the CPU)"
    problem = fallbacks[0] if fallbacks else nvjpeg_problem()
    return "nvjpeg" if problem is None else f"cpu ({problem})"


def write_h264(source: Path, target: Path, frames: int, size: tuple[int, int]) -> Path:
    """The first ``frames`` frames of ``source`` scaled to ``size``, as H.264 (libx264 of PyAV's FFmpeg)."""
    capture = cv2.VideoCapture(str(source))
    with av.open(str(target), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for _ in range(frames):
            ok, image = capture.read()
            if not ok:
                break
            picture = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="bgr24")))
        container.mux(stream.encode())
    capture.release()
    return target


FULL_HD = (1920, 1080)


def pipeline_on_device(
    device: str,
    precision: str,
    analyzers: dict[str, dict[str, Any]],
    smoke: bool,
    size: tuple[int, int] = FULL_HD,
) -> dict[str, Any]:
    """One whole-pipeline run of the detector's ``analyzers`` at ``precision`` on ``size`` frames
    (640x360 for ``smoke`` on a CPU); sized to a few seconds of frames on a GPU."""
    gpu = device.startswith("cuda")
    size = size if gpu or not smoke else (640, 360)
    copies, frames = (8, 125) if gpu and not smoke else (2, 32) if gpu else (1, 8 if smoke else 24)
    batch = 32 if gpu else 4
    config = settings(
        analyzers,
        batch=batch,
        device=device,
        precision=precision,
        max_frame_age_s=0,
    )
    camera = {"decode": "nvdec", "max_width": size[0], "max_height": size[1]}
    with tempfile.TemporaryDirectory() as tmp:
        video = write_h264(bikes_path(), Path(tmp) / "clip.mp4", frames, size)
        problem = nvdec_problem(SourceKind.FILE, str(video))
        utilisation = GpuUtilisation(device)
        with EncodeFallbacks() as fallbacks:
            figures = asyncio.run(
                pipeline_run(video, copies, frames * copies, Path(tmp) / "run", config, camera, utilisation)
            )
    fps = figures["fps"]
    return {
        "resolution": f"{size[0]}x{size[1]}",
        "decoded_by": "nvdec" if problem is None else f"cpu ({problem})",
        "encoded_by": encoded_by(problem is None, fallbacks.reasons),
        "cameras": copies,
        "frames": figures["frames"],
        "batch": batch,
        "fps": round(fps, 2),
        "cameras_at_5fps": int(fps // 5),
        "cameras_at_25fps": int(fps // 25),
        "mean_batch": round(figures["mean_batch"], 2),
        "gpu_utilisation": utilisation.summary(),
        "cpu_ms_per_frame": figures["cpu_ms_per_frame"],
    }
