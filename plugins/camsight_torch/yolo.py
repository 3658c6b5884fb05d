"""YOLO-family ONNX detectors: letterbox, run, decode, confidence filter, per-class NMS.

Two output layouts are understood (``layout: auto`` tells them apart by shape):

* ``v8`` (YOLOv8/v11 exports): ``(N, 4 + classes, anchors)``, no objectness;
* ``v5`` (YOLOv5/v7 exports): ``(N, anchors, 5 + classes)``, objectness x class score.

Boxes are ``cx, cy, w, h`` in letterboxed input pixels; they are mapped back
to the original image and normalised. The model runs with onnxruntime (on
the CUDA execution provider when ``device`` asks for a GPU and
onnxruntime-gpu is installed), or converted to a torch module with
onnx2torch (``runtime: torch``, the way to put it on a GPU without
onnxruntime-gpu). With the torch runtime the analyzer takes tensors
(``inputs``, decision 0076): the host decodes the frames on its device and
the letterbox is done there, so a picture never goes through host memory;
onnxruntime takes numpy arrays, letterboxed with OpenCV. Files exported by
ultralytics (YOLOv8, YOLO11) are checked against ultralytics' own
predictions in tests/analyzers/test_yolo_exports.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

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
    Inputs,
    Picture,
    resolve_device,
)
from camsight.analyzers.devices import cuda_available, prepare_module, torch_dtype
from camsight.analyzers.onnxrt import load_model, session
from camsight.analyzers.onnxtorch import to_torch
from camsight.analyzers.pictures import on_device
from pydantic import Field

from camsight_torch.common import label_of, load_labels, resize

if TYPE_CHECKING:
    import torch

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

    @classmethod
    def fit(cls, width: int, height: int, size: int) -> Letterbox:
        """Scale keeping the aspect ratio into ``size`` x ``size``, centred (pads rounded down)."""
        scale = min(size / width, size / height)
        pad_x, pad_y = (size - round(width * scale)) // 2, (size - round(height * scale)) // 2
        return cls(scale, float(pad_x), float(pad_y), width, height)

    @property
    def resized(self) -> tuple[int, int]:
        """``(width, height)`` of the picture inside the square."""
        return round(self.width * self.scale), round(self.height * self.scale)


def letterbox(image: Image, size: int) -> tuple[Floats, Letterbox]:
    """Resize keeping the aspect ratio, pad to ``size`` x ``size`` with grey; RGB CHW float 0..1."""
    box = Letterbox.fit(image.shape[1], image.shape[0], size)
    (new_w, new_h), left, top = box.resized, int(box.pad_x), int(box.pad_y)
    canvas = np.full((size, size, 3), 114, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = cv2.resize(
        image, (new_w, new_h), interpolation=cv2.INTER_LINEAR
    )
    return canvas[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0, box


def letterbox_tensor(picture: torch.Tensor, size: int) -> tuple[torch.Tensor, Letterbox]:
    """:func:`letterbox` on the picture's device: RGB uint8 ``3 x H x W`` -> RGB float ``3 x size x size``.

    Bilinear without antialiasing, in whole grey levels, as OpenCV's INTER_LINEAR.
    """
    import torch

    box = Letterbox.fit(picture.shape[-1], picture.shape[-2], size)
    (new_w, new_h), left, top = box.resized, int(box.pad_x), int(box.pad_y)
    canvas = torch.full((3, size, size), 114.0, device=picture.device)
    canvas[:, top : top + new_h, left : left + new_w] = resize(
        picture[None], (new_h, new_w), antialias=False
    )[0]
    return canvas.div_(255.0), box


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
        self._device: str | None = None  # where the torch runtime runs; None: onnxruntime

    @property
    def cfg(self) -> YoloConfig:
        assert isinstance(self.config, YoloConfig)
        return self.config

    @property
    def model_version(self) -> str:
        return f"{self.version}/{self.cfg.model.name}"

    @property
    def runtime(self) -> Literal["onnxruntime", "torch"]:
        """What runs the model: ``runtime``, with auto resolved (torch on a GPU, else onnxruntime)."""
        if self.cfg.runtime != "auto":
            return self.cfg.runtime
        return "torch" if self.cfg.device != "cpu" and cuda_available() else "onnxruntime"

    @property
    def inputs(self) -> Inputs:
        """Tensors on the device for the torch runtime (letterboxed there); arrays for onnxruntime."""
        return "tensor" if self.runtime == "torch" else "numpy"

    def load(self) -> None:
        self._labels = load_labels(self.cfg.labels, [])
        self._device = resolve_device(self.cfg.device) if self.runtime == "torch" else None
        self._run = self._ort_runner() if self._device is None else self._torch_runner(self._device)

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

    def _torch_runner(self, device: str) -> Any:
        import torch

        graph = load_model(self.cfg.model)
        # A file exported for one image at a time (ultralytics' default) runs a batch image by image.
        self._batched = graph.graph.input[0].type.tensor_type.shape.dim[0].dim_value != 1
        module = prepare_module(to_torch(graph), device, self.cfg.precision)
        dtype = torch_dtype(None if self.cfg.precision == "int8" else self.cfg.precision)

        def run(batch: torch.Tensor) -> Floats:
            with torch.inference_mode():
                out = module(batch.to(dtype=dtype))
            out = out[0] if isinstance(out, list | tuple) else out
            return np.asarray(out.float().cpu().numpy(), dtype=np.float32)

        return run

    def analyze(self, images: Sequence[Picture], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        if not images:
            return []
        if self._run is None:
            raise RuntimeError(f"{self.name} used before load()")
        size = self.cfg.input_size
        batch: Any
        if self._device is not None:  # the torch runtime: letterboxed on its device
            import torch

            on_gpu = [letterbox_tensor(on_device(img, self._device), size) for img in images]
            batch, boxes = torch.stack([tensor for tensor, _ in on_gpu]), [box for _, box in on_gpu]
        else:  # onnxruntime takes arrays (``inputs``)
            arrays = [letterbox(cast(Image, img), size) for img in images]
            batch, boxes = np.stack([array for array, _ in arrays]), [box for _, box in arrays]
        if self._batched:
            output = np.asarray(self._run(batch), dtype=np.float32)
        else:
            output = np.concatenate(
                [np.asarray(self._run(batch[i : i + 1]), dtype=np.float32) for i in range(len(batch))]
            )
        decoded = decode(output, self.cfg.layout, self.cfg.conf_threshold)
        return [self._detections(d, box) for d, box in zip(decoded, boxes, strict=True)]

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
