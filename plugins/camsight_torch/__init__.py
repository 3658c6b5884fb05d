"""Built-in camsight analyzers on torch (registered through the camsight entry-point group).

* ``torchvision_detector``: any torchvision detection model, weights from a file;
* ``yolo_onnx``: YOLO-family ONNX exports, with onnxruntime or as a torch module (onnx2torch);
* ``torch_video``: a torchvision video classifier (r3d_18, mvit, ...) as a clip analyzer.

torch is imported in ``load()`` only, so listing plugins stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence

from camsight.analyzers import Analyzer, hookimpl

from camsight_torch.detection import TorchvisionDetector
from camsight_torch.video import TorchVideoClassifier
from camsight_torch.yolo import OnnxYolo

__version__ = "0.1.0"


@hookimpl
def camsight_analyzers() -> Sequence[type[Analyzer]]:
    return [TorchvisionDetector, OnnxYolo, TorchVideoClassifier]
