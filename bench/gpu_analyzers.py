"""Batched vs unbatched torch analyzers: one command, under 5 minutes, GPU when there is one.

For each torch analyzer (random weights: speed only, the outputs are
noise) it measures frames (or clips) per second analysed one at a time
and in batches, at fp32 and, on a GPU, at fp16:

* ``torchvision_detector``: fasterrcnn_mobilenet_v3_large_fpn on 640x360
  frames (GPU) / ssdlite320_mobilenet_v3_large on 320x240 frames (CPU);
* ``torch_video``: r3d_18 on 16-frame 112x112 windows (GPU) / 4-frame
  32x32 windows (CPU);
* ``yolo_onnx`` with ``runtime: torch``: YOLOv8n as ultralytics exports it,
  with random weights (``gpu_yolo.py``), at 640 (GPU) / 320 (CPU), on
  640x360 frames.

Every analyzer that takes tensors (decision 0076) is measured twice: fed
numpy arrays (``..._fps``, converted and moved by the analyzer) and fed
RGB uint8 tensors already on its device, as the host hands them
(``tensors_...``); ``tensors_vs_numpy`` is their ratio at the largest batch.

On a CPU-only machine it runs the small sizes so the script still works
(slowly); the figures that matter come from a GPU.

Run: ``.venv/bin/python bench/gpu_analyzers.py [--smoke]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from camsight.analyzers import Clip, ClipAnalyzer, FrameAnalyzer, FrameInfo, Image, resolve_device
from camsight.analyzers.manager import instantiate
from camsight.analyzers.pictures import image_to_tensor
from camsight_torch.detection import TorchvisionDetector
from camsight_torch.video import TorchVideoClassifier
from camsight_torch.yolo import OnnxYolo
from gpu_yolo import analyzer_config as yolo_config
from gpu_yolo import yolo_model


def rate(items: Sequence[Any], batch: int, call: Callable[[Sequence[Any]], object], repeat: int) -> float:
    """Items per second through ``call`` in chunks of ``batch`` (after one warm-up call)."""
    call(items[:batch])
    started = time.perf_counter()
    for _ in range(repeat):
        for i in range(0, len(items), batch):
            call(items[i : i + batch])
    return repeat * len(items) / (time.perf_counter() - started)


def frames(count: int, width: int, height: int) -> list[tuple[Image, FrameInfo]]:
    rng = np.random.default_rng(0)
    return [
        (rng.integers(0, 255, (height, width, 3), dtype=np.uint8), FrameInfo("bench", i + 1, width, height))
        for i in range(count)
    ]


def with_tensors(
    out: dict[str, float], items: Sequence[Any], call: Callable[[Sequence[Any]], object], gpu: bool
) -> None:
    """Add ``tensors_<key>``: ``call`` on ``items`` (pictures already on the device) at the largest
    batch measured in ``out`` (its last key), and its ratio to the numpy figure."""
    key = list(out)[-1]
    batch = int(key.split("_")[1])
    out[f"tensors_{key}"] = rate(items, batch, call, 3 if gpu else 1)
    out["tensors_vs_numpy"] = out[f"tensors_{key}"] / out[key]


def detector(device: str, gpu: bool, precision: str, smoke: bool) -> dict[str, float]:
    model = "fasterrcnn_mobilenet_v3_large_fpn" if gpu else "ssdlite320_mobilenet_v3_large"
    config = {"model": model, "random_weights": True, "min_score": 0.0, "precision": precision}
    analyzer = instantiate(TorchvisionDetector, config, device=device)
    analyzer.load()
    assert isinstance(analyzer, FrameAnalyzer)
    items = frames(64 if gpu else (4 if smoke else 16), *((640, 360) if gpu else (320, 240)))

    def call(chunk: Sequence[tuple[Image, FrameInfo]]) -> object:
        return analyzer.analyze([img for img, _ in chunk], [info for _, info in chunk])

    batches = (1, 8, 32) if gpu else (1, 4)
    out = {f"batch_{b}_fps": rate(items, b, call, 3 if gpu else 1) for b in batches}
    analyzer.close()
    return out


def video(device: str, gpu: bool, precision: str, smoke: bool) -> dict[str, float]:
    window, size = (16, 112) if gpu else (4, 32)
    config = {
        "random_weights": True,
        "window": window,
        "size": size,
        "min_score": 0.0,
        "precision": precision,
    }
    analyzer = instantiate(TorchVideoClassifier, config, device=device)
    analyzer.load()
    assert isinstance(analyzer, ClipAnalyzer)
    pics = frames(window, size * 2, size * 2)
    infos = [info for _, info in pics]
    clips = [Clip("bench", [img for img, _ in pics], infos)] * (64 if gpu else (4 if smoke else 16))
    on_device = [Clip("bench", [image_to_tensor(img, device) for img, _ in pics], infos)] * len(clips)
    batches = (1, 8, 32) if gpu else (1, 4)
    out = {f"batch_{b}_clips_per_s": rate(clips, b, analyzer.analyze_clips, 3 if gpu else 1) for b in batches}
    with_tensors(out, on_device, analyzer.analyze_clips, gpu)
    analyzer.close()
    return out


def yolo(device: str, gpu: bool, precision: str, smoke: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        config = yolo_config(yolo_model(Path(folder), 640 if gpu else 320))
        analyzer = instantiate(OnnxYolo, {**config, "precision": precision}, device=device)
        analyzer.load()
    assert isinstance(analyzer, FrameAnalyzer)
    items = frames(64 if gpu else (4 if smoke else 8), 640, 360)
    infos = [info for _, info in items]

    def call(chunk: Sequence[Any]) -> object:
        return analyzer.analyze([picture for picture, _ in chunk], infos[: len(chunk)])

    batches = (1, 8, 32) if gpu else (1, 4)
    out = {f"batch_{b}_fps": rate(items, b, call, 3 if gpu else 1) for b in batches}
    on_device = [(image_to_tensor(img, device), info) for img, info in items]
    with_tensors(out, on_device, call, gpu)
    analyzer.close()
    return out


def run(smoke: bool = False) -> dict[str, Any]:
    device = resolve_device("auto")
    gpu = device.startswith("cuda")
    result: dict[str, Any] = {"device": device}
    if gpu:
        import torch

        result["gpu"] = torch.cuda.get_device_name(0)
    for precision in ("fp32", "fp16") if gpu else ("fp32",):
        for name, bench in (("torchvision_detector", detector), ("torch_video", video), ("yolo_torch", yolo)):
            figures = bench(device, gpu, precision, smoke)
            result[f"{name}_{precision}"] = {k: round(v, 2) for k, v in figures.items()}
    return result


if __name__ == "__main__":
    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))
