"""``precision: int8`` on torch analyzers: applied where it converts something, refused where it would not.

int8 on torch is dynamic quantization of Linear layers; a model whose
weights are mostly convolutions would run unchanged, so loading it at int8
is a one-line error (decision 0029; the speed figures are in bench/quantize.py).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from analyzer_helpers import Image
from camsight.analyzers import AnalyzerError, FrameInfo
from camsight.analyzers.manager import instantiate
from camsight_torch.detection import TorchvisionDetector
from camsight_torch.video import TorchVideoClassifier

DETECTOR = {"random_weights": True, "min_score": 0.0, "model_kwargs": {"detections_per_img": 5}}


def test_int8_quantizes_the_linear_layers_of_a_detector_that_has_them(bikes: list[Image]) -> None:
    """fasterrcnn_mobilenet_v3_large_320_fpn keeps 74 % of its weights in its box head's Linear layers."""
    kwargs = {"detections_per_img": 5, "box_score_thresh": 0.0}  # random weights: low scores
    config = {
        **DETECTOR,
        "model": "fasterrcnn_mobilenet_v3_large_320_fpn",
        "precision": "int8",
        "model_kwargs": kwargs,
    }
    analyzer = instantiate(TorchvisionDetector, config, "cpu")
    analyzer.load()
    assert isinstance(analyzer, TorchvisionDetector)
    quantized = [m for m in analyzer._model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(quantized) >= 2
    found = analyzer.analyze(bikes[:1], [FrameInfo("b", 1, 640, 272)])
    assert len(found) == 1 and len(found[0]) >= 1
    analyzer.close()


@pytest.mark.parametrize(
    ("cls", "config"),
    [
        (TorchvisionDetector, {**DETECTOR, "model": "ssdlite320_mobilenet_v3_large"}),
        (TorchVideoClassifier, {"random_weights": True, "window": 4, "size": 32}),
    ],
)
def test_int8_on_a_convolutional_model_is_refused_in_one_line(cls: Any, config: dict[str, Any]) -> None:
    analyzer = instantiate(cls, {**config, "precision": "int8"}, "cpu")
    with pytest.raises(AnalyzerError) as caught:
        analyzer.load()
    message = str(caught.value)
    assert message.startswith("precision int8 does nothing for this model") and "\n" not in message
