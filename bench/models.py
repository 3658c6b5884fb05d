"""Model benchmark: what a COCO detector and a video transformer cost per frame / per clip on one core.

Two questions of issue 19, answered on this machine with random weights (speed does not
depend on the weights' values, except for detectors' post-processing, see below):

* which torchvision COCO detector ``camsight run`` / ``demo`` uses by default: the candidates
  through the ``torchvision_detector`` analyzer on frames of bikes.mp4 (640x272), one frame per
  call, against the HOG + motion pair they replace, measured in the same run (ratio =
  detector seconds per frame / HOG + motion seconds per frame). Random weights make an SSD
  keep its maximum of candidate boxes into NMS, so its figure is an upper bound;
* what a clip costs for the ``torch_video`` analyzer's architectures (r3d_18, mvit_v2_s,
  swin3d_t), each at its weights' clip length and crop (16x112x112, 16x224x224, 32x224x224),
  one clip per call, against r3d_18 in the same run.

torch and OpenCV run on one thread: the figures are per core.

Run: ``.venv/bin/python bench/models.py [--smoke]``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from camsight.analyzers import Clip, FrameInfo
from camsight.analyzers.manager import default_manager
from faces import sample  # bench/faces.py: the first frames of a sample video

DETECTORS = (
    "ssdlite320_mobilenet_v3_large",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
)
VIDEO_MODELS = {"r3d_18": (16, 112), "mvit_v2_s": (16, 224), "swin3d_t": (32, 224)}


def seconds_per_call(call: Callable[[int], None], calls: int, min_s: float) -> float:
    """Median seconds of ``call(i)``: at least ``calls`` calls and ``min_s`` seconds, after a warm-up."""
    call(0)
    times: list[float] = []
    started = time.perf_counter()
    i = 0
    while i < calls or time.perf_counter() - started < min_s:
        t0 = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - t0)
        i += 1
    return float(np.median(times))


def detectors(images: list[np.ndarray[Any, Any]], min_s: float, models: tuple[str, ...]) -> dict[str, Any]:
    manager = default_manager()
    infos = [FrameInfo("bikes", i, 640, 272, media_time=i / 25) for i in range(len(images))]

    def per_frame(names: dict[str, dict[str, Any]]) -> float:
        analyzers = [manager.create(name, config, "cpu") for name, config in names.items()]
        for analyzer in analyzers:
            analyzer.load()

        def call(i: int) -> None:
            k = i % len(images)
            for analyzer in analyzers:
                analyzer.analyze([images[k]], [infos[k]])  # type: ignore[attr-defined]

        return seconds_per_call(call, len(images), min_s)

    baseline = per_frame({"hog": {}, "motion": {}})
    out: dict[str, Any] = {"hog_motion_ms_per_frame": round(baseline * 1000, 1)}
    for model in models:
        cost = per_frame({"torchvision_detector": {"model": model, "random_weights": True}})
        out[model] = {"ms_per_frame": round(cost * 1000, 1), "ratio_to_hog_motion": round(cost / baseline, 2)}
    return out


def clips(
    images: list[np.ndarray[Any, Any]], min_s: float, calls: int, models: dict[str, tuple[int, int]]
) -> dict[str, Any]:
    manager = default_manager()
    out: dict[str, Any] = {}
    for model, (length, size) in models.items():
        config = {"model": model, "random_weights": True, "window": length, "size": size}
        analyzer = manager.create("torch_video", config, "cpu")
        analyzer.load()
        frames = images[:length]
        clip = Clip("bikes", frames, [FrameInfo("bikes", i, 640, 272) for i in range(length)])
        cost = seconds_per_call(lambda _i, a=analyzer, c=clip: a.analyze_clips([c]), calls, min_s)  # type: ignore[attr-defined,misc]
        out[model] = {"clip": f"{length}x{size}x{size}", "s_per_clip": round(cost, 3)}
    for model in models:
        out[model]["ratio_to_r3d_18"] = round(out[model]["s_per_clip"] / out["r3d_18"]["s_per_clip"], 2)
    return out


def run(smoke: bool = False) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    images = sample("bikes.mp4", 32 if smoke else 100)
    if smoke:  # plumbing only: the cheapest of each, on small inputs
        return {
            "smoke": True,
            "detectors": detectors(images[:4], 0.0, DETECTORS[:1]),
            "clips": clips(images, 0.0, 1, {"r3d_18": (4, 32)}),
        }
    return {
        "smoke": False,
        "detectors": detectors(images, 5.0, DETECTORS),
        "clips": clips(images, 5.0, 3, VIDEO_MODELS),
    }


if __name__ == "__main__":
    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))
