"""Face benchmark: faces per second per core for detection and for embedding, and batched torch CenterFace.

* Detection: CenterFace through OpenCV DNN (the CPU default) and the Haar
  cascade, one thread each, on carphone_pristine (176x144, one face per
  frame) and on bikes.mp4 (640x272, analysed at 640x288). Per core =
  frames (faces) per CPU-second of this process, with OpenCV limited to one
  thread.
* Embedding: dlib 5-point alignment + ResNet 128-d on the CenterFace boxes
  of carphone, per CPU-second.
* Torch: the same CenterFace weights through onnx2torch, batched. On the CPU
  (one thread) for reference; on a GPU (when torch sees one) at batch 1, 8
  and 32 on bikes-sized frames, after checking it agrees with OpenCV DNN.
  This is the GPU script path: run it on a GPU machine in camsight's venv.

Run: ``.venv/bin/python bench/faces.py [--smoke]``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
from camsight.samples import sample_video
from camsight_faces.centerface import CenterFaceOpenCV, CenterFaceTorch
from camsight_faces.embedding import DlibEmbedder
from camsight_faces.haar import HaarFaceDetector


def sample(name: str, limit: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(sample_video(name)))
    frames: list[np.ndarray] = []
    while len(frames) < limit:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def measure(work: Callable[[], int], min_s: float) -> dict[str, float]:
    """Repeat ``work`` (returns items done) for at least ``min_s``; items per wall- and CPU-second."""
    work()  # warm-up: network allocation, first-call costs
    items, wall, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        items += work()
        elapsed = time.perf_counter() - wall
        if elapsed >= min_s:
            break
    cpu_s = time.process_time() - cpu
    return {"items": items, "per_s": items / elapsed, "per_core_s": items / max(cpu_s, 1e-9)}


def detection(
    detector: Any, frames: Sequence[np.ndarray], min_s: float, threshold: float
) -> dict[str, float]:
    faces_per_pass = sum(len(f) for f in detector.detect(frames, threshold))
    frame_rate = measure(lambda: len(detector.detect(frames, threshold)), min_s)
    return {
        "frames_per_s_per_core": round(frame_rate["per_core_s"], 1),
        "faces_per_s_per_core": round(frame_rate["per_core_s"] * faces_per_pass / len(frames), 1),
        "faces_per_frame": round(faces_per_pass / len(frames), 2),
    }


def embedding(frames: Sequence[np.ndarray], min_s: float) -> dict[str, float]:
    boxes = [f.boxes for f in CenterFaceOpenCV().detect(frames, 0.5)]
    embedder = DlibEmbedder()
    rate = measure(lambda: sum(len(e) for e in embedder.embed_many(frames, boxes)), min_s)
    return {
        "faces_per_s_per_core": round(rate["per_core_s"], 1),
        "ms_per_face_one_core": round(1000 / rate["per_core_s"], 1),
    }


def torch_gpu(frames: Sequence[np.ndarray], min_s: float) -> dict[str, Any]:
    """Batched torch CenterFace on CUDA: frames per second by batch size, and agreement with OpenCV."""
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "torch sees no CUDA device"}
    gpu = CenterFaceTorch(device="cuda")
    reference = CenterFaceOpenCV().detect(frames[:16], 0.5)
    got = gpu.detect(frames[:16], 0.5)
    worst_box = max(
        (
            float(np.abs(a.boxes - b.boxes).max())
            for a, b in zip(reference, got, strict=True)
            if len(a) == len(b) and len(a)
        ),
        default=0.0,
    )
    same = all(len(a) == len(b) for a, b in zip(reference, got, strict=True))
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0),
        "agrees": same,
        "max_box_diff_px": round(worst_box, 3),
    }
    for batch in (1, 8, 32):
        chunk = [frames[i % len(frames)] for i in range(batch)]

        def run(chunk: list[np.ndarray] = chunk) -> int:
            gpu.detect(chunk, 0.5)
            torch.cuda.synchronize()
            return len(chunk)

        out[f"batch_{batch}_frames_per_s"] = round(measure(run, min_s)["per_s"], 1)
    return out


def one_thread_footage(smoke: bool) -> tuple[float, list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Limit OpenCV and torch to one thread; (min_s, carphone, bikes, bikes frames with a face)."""
    cv2.setNumThreads(1)
    import torch

    torch.set_num_threads(1)
    carphone = sample("carphone_pristine.mp4", 8 if smoke else 120)
    bikes = sample("bikes.mp4", 137)
    bikes_faces = bikes[103:111] if smoke else bikes[103:137]  # the cyclist's face is visible
    return (0.2 if smoke else 5.0), carphone, bikes, bikes_faces


def run(smoke: bool = False) -> dict[str, Any]:
    min_s, carphone, bikes, bikes_faces = one_thread_footage(smoke)
    return {
        "smoke": smoke,
        "centerface_opencv_carphone_176x144": detection(CenterFaceOpenCV(), carphone, min_s, 0.5),
        "centerface_opencv_bikes_640x272": detection(CenterFaceOpenCV(), bikes_faces, min_s, 0.5),
        "haar_carphone_176x144": detection(HaarFaceDetector(), carphone, min_s, 0.0),
        "haar_bikes_640x272": detection(HaarFaceDetector(), bikes_faces, min_s, 0.0),
        "centerface_torch_cpu_batched_carphone": detection(
            CenterFaceTorch(device="cpu"), carphone[:8], min_s, 0.5
        ),
        "dlib_embedding_carphone": embedding(carphone, min_s),
        "centerface_torch_gpu_bikes": torch_gpu(bikes, min_s),
    }


if __name__ == "__main__":
    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))
