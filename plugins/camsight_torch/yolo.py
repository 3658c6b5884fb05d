"""YOLO-family ONNX detectors: letterbox, run, decode, confidence filter, per-class NMS.

Two output layouts are understood (``layout: auto`` tells them apart by shape):

* ``v8`` (YOLOv8/v11 exports): ``(N, 4 + classes, anchors)``, no objectness;
* ``v5`` (YOLOv5/v7 exports): ``(N, anchors, 5 + classes)``, objectness x class score.

Boxes are ``cx, cy, w, h`` in letterboxed input pixels; they are mapped back
to the original image and normalised. The model runs with onnxruntime (on
the CUDA execution provider when ``device`` asks for a GPU and
onnxruntime-gpu is installed), or converted to a torch module with
onnx2torch (``runtime: torch``, the way to put it on a GPU without
onnxruntime-gpu). Files exported by ultralytics (YOLOv8, YOLO11) are checked
against ultralytics' own predictions in tests/analyzers/test_yolo_exports.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
from camsight.analyzers import (
    KIND_OBJECTS,
    AnalyzerConfig,
    AnalyzerError,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
    resolve_device,
)
from camsight.analyzers.devices import cuda_available, prepare_module, torch_dtype
from camsight.analyzers.onnxrt import load_model, session
from camsight.analyzers.onnxtorch import to_torch
from pydantic import Field

from camsight_torch.common import label_of, load_labels

Floats = npt.NDArray[np.float32]
Decoded = tuple[Floats, Floats, npt.NDArray[np.int64]]
"""Per image: xyxy boxes in input pixels, scores, class ids."""


class YoloConfig(AnalyzerConfig):
    model: Path = Field(description="the exported YOLO .onnx file (required)")
    labels: list[str] | Path | None = Field(
        default=None, description="class names by class index, or a file with one per line; unset = class_<n>"
    )
    input_size: int = Field(
        default=640,
        ge=32,
        le=4096,
        description="side of the square network input, as exported (pixels); images are letterboxed into it",
    )
    conf_threshold: float = Field(default=0.25, ge=0, le=1, description="minimum detection score (0 to 1)")
    iou_threshold: float = Field(
        default=0.45, ge=0, le=1, description="overlap (IoU) above which the weaker box of a class is dropped"
    )
    max_detections: int = Field(default=300, ge=1, description="at most this many detections per image")
    layout: Literal["auto", "v5", "v8"] = Field(
        default="auto", description="output layout: v8 (YOLOv8/v11), v5 (YOLOv5/v7), or auto from its shape"
    )
    runtime: Literal["auto", "onnxruntime", "torch"] = Field(
        default="auto",
        description="what runs the model: auto = torch (onnx2torch) on a GPU, else onnxruntime",
    )


@dataclass(frozen=True)
class Letterbox:
    """How an image was scaled and padded into the square input."""

    scale: float
    pad_x: float
    pad_y: float
    width: int
    height: int

    def normalise(self, boxes: Floats) -> Floats:
        """Input-pixel xyxy boxes -> normalised xyxy boxes of the original image, clipped."""
        out = boxes.copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale / self.width
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale / self.height
        return np.clip(out, 0.0, 1.0)


def letterbox(image: Image, size: int) -> tuple[Floats, Letterbox]:
    """Resize keeping the aspect ratio, pad to ``size`` x ``size`` with grey; RGB CHW float 0..1."""
    height, width = image.shape[:2]
    scale = min(size / width, size / height)
    new_w, new_h = round(width * scale), round(height * scale)
    pad_x, pad_y = (size - new_w) / 2, (size - new_h) / 2
    canvas = np.full((size, size, 3), 114, dtype=np.uint8)
    left, top = int(pad_x), int(pad_y)
    canvas[top : top + new_h, left : left + new_w] = cv2.resize(
        image, (new_w, new_h), interpolation=cv2.INTER_LINEAR
    )
    tensor = canvas[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0
    return tensor, Letterbox(scale, float(left), float(top), width, height)


def decode(output: Floats, layout: str, conf_threshold: float) -> list[Decoded]:
    """Raw head output -> per image (xyxy boxes in input pixels, scores, class ids) above the threshold."""
    if output.ndim != 3:
        raise AnalyzerError(f"expected a (batch, ., .) YOLO output, got shape {output.shape}")
    if layout == "auto":
        layout = "v8" if output.shape[1] < output.shape[2] else "v5"
    rows = output.transpose(0, 2, 1) if layout == "v8" else output
    results = []
    for pred in rows:
        class_scores = pred[:, 4:] if layout == "v8" else pred[:, 5:] * pred[:, 4:5]
        classes = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(pred)), classes]
        keep = scores >= conf_threshold
        cx, cy, w, h = (pred[keep, i] for i in range(4))
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
        results.append((boxes, scores[keep].astype(np.float32), classes[keep].astype(np.int64)))
    return results


def nms(
    boxes: Floats, scores: Floats, classes: npt.NDArray[np.int64], iou: float, limit: int
) -> npt.NDArray[np.int64]:
    """Indices kept by per-class non-maximum suppression, best first, at most ``limit``."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    import torch
    from torchvision.ops import batched_nms

    keep = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), iou)
    return np.asarray(keep[:limit].numpy(), dtype=np.int64)


class OnnxYolo(FrameAnalyzer):
    name = "yolo_onnx"
    kind = KIND_OBJECTS
    version = "0.1.0"
    Config = YoloConfig

    def __init__(self, config: AnalyzerConfig | None = None) -> None:
        super().__init__(config)
        self._run: Any = None
        self._labels: list[str] = []
        self._batched = True

    @property
    def cfg(self) -> YoloConfig:
        assert isinstance(self.config, YoloConfig)
        return self.config

    @property
    def model_version(self) -> str:
        return f"{self.version}/{self.cfg.model.name}"

    def load(self) -> None:
        cfg = self.cfg
        self._labels = load_labels(cfg.labels, [])
        runtime = cfg.runtime
        if runtime == "auto":
            runtime = "torch" if cfg.device != "cpu" and cuda_available() else "onnxruntime"
        self._run = self._torch_runner() if runtime == "torch" else self._ort_runner()

    def _ort_runner(self) -> Any:
        if self.cfg.precision not in (None, "fp32"):
            raise AnalyzerError(
                f"precision {self.cfg.precision} does nothing with onnxruntime: use fp32 with an int8 "
                "file from `camsight models quantize`, or runtime: torch on a GPU"
            )
        ort = session(self.cfg.model, self.cfg.device)
        spec = ort.get_inputs()[0]
        self._batched = not isinstance(spec.shape[0], int) or spec.shape[0] != 1
        return lambda batch: ort.run(None, {spec.name: batch})[0]

    def _torch_runner(self) -> Any:
        import torch

        device = resolve_device(self.cfg.device)
        model = load_model(self.cfg.model)
        # A file exported for one image at a time (ultralytics' default) runs a batch image by image.
        self._batched = model.graph.input[0].type.tensor_type.shape.dim[0].dim_value != 1
        module = prepare_module(to_torch(model), device, self.cfg.precision)
        dtype = torch_dtype(None if self.cfg.precision == "int8" else self.cfg.precision)

        def run(batch: Floats) -> Floats:
            with torch.inference_mode():
                out = module(torch.from_numpy(batch).to(device=device, dtype=dtype))
            out = out[0] if isinstance(out, list | tuple) else out
            return np.asarray(out.float().cpu().numpy(), dtype=np.float32)

        return run

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        if not images:
            return []
        if self._run is None:
            raise RuntimeError(f"{self.name} used before load()")
        prepared = [letterbox(img, self.cfg.input_size) for img in images]
        batch = np.stack([tensor for tensor, _ in prepared])
        if self._batched:
            output = np.asarray(self._run(batch), dtype=np.float32)
        else:
            output = np.concatenate(
                [np.asarray(self._run(batch[i : i + 1]), dtype=np.float32) for i in range(len(batch))]
            )
        decoded = decode(output, self.cfg.layout, self.cfg.conf_threshold)
        return [self._detections(d, box) for d, (_, box) in zip(decoded, prepared, strict=True)]

    def _detections(
        self, decoded: tuple[Floats, Floats, npt.NDArray[np.int64]], box: Letterbox
    ) -> list[Detection]:
        boxes, scores, classes = decoded
        keep = nms(boxes, scores, classes, self.cfg.iou_threshold, self.cfg.max_detections)
        normalised = box.normalise(boxes[keep])
        return [
            Detection(
                label_of(self._labels, int(classes[i])),
                float(min(1.0, scores[i])),
                (float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            )
            for i, b in zip(keep, normalised, strict=True)
        ]

    def close(self) -> None:
        self._run = None
