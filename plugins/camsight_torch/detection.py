"""Any torchvision detection model (Faster R-CNN, RetinaNet, SSD, FCOS, ...), weights by name or file.

The model resizes and normalises its inputs itself (so named weights need no
preprocessing here beyond 0..1 RGB); boxes come back in input pixels and
are normalised here. Images of one batch may differ in size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from camsight.analyzers import (
    KIND_OBJECTS,
    AnalyzerConfig,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
    Picture,
)
from camsight.analyzers.devices import torch_dtype
from camsight.analyzers.pictures import picture_size
from pydantic import Field

from camsight_torch.common import (
    WeightsConfig,
    label_of,
    load_torchvision_model,
    to_tensor,
    weights_version,
)


class DetectorConfig(WeightsConfig):
    model: str = Field(
        default="ssdlite320_mobilenet_v3_large",
        description="torchvision detection model name (torchvision.models.detection)",
    )
    num_classes: int = Field(
        default=91,
        ge=2,
        description=(
            "number of classes including background, as a weights file was trained"
            " (named weights bring theirs)"
        ),
    )
    min_score: float = Field(default=0.5, ge=0, le=1, description="minimum detection score (0 to 1)")
    keep: list[str] = Field(default_factory=list, description="report only these labels (empty = all)")
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra keyword arguments for the model constructor"
    )


class TorchvisionDetector(FrameAnalyzer):
    name = "torchvision_detector"
    kind = KIND_OBJECTS
    version = "0.1.0"
    Config = DetectorConfig
    inputs = "tensor"  # decoded on its device by the host: nvJPEG on a GPU, no host copy (decision 0076)

    def __init__(self, config: AnalyzerConfig | None = None) -> None:
        super().__init__(config)
        self._model: Any = None
        self._device = "cpu"
        self._labels: list[str] = []

    @property
    def cfg(self) -> DetectorConfig:
        assert isinstance(self.config, DetectorConfig)
        return self.config

    @property
    def model_version(self) -> str:
        return weights_version(self.version, self.cfg.model, self.cfg)

    def load(self) -> None:
        from torchvision.models._meta import _COCO_CATEGORIES

        cfg = self.cfg
        loaded = load_torchvision_model(
            "detection",
            cfg.model,
            cfg,
            _COCO_CATEGORIES,
            cfg.num_classes,
            weights_backbone=None,
            **cfg.model_kwargs,
        )
        self._model, self._device, self._labels = loaded.module, loaded.device, loaded.labels

    def analyze(self, images: Sequence[Picture], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        if not images:
            return []
        if self._model is None:
            raise RuntimeError(f"{self.name} used before load()")
        import torch

        dtype = torch_dtype(self.cfg.precision if self.cfg.precision != "int8" else None)
        with torch.inference_mode():
            outputs = self._model([to_tensor(img, self._device, dtype) for img in images])
        return [self._detections(out, img) for out, img in zip(outputs, images, strict=True)]

    def _detections(self, output: dict[str, Any], image: Picture) -> list[Detection]:
        height, width = picture_size(image)
        found = []
        for box, score, label in zip(
            output["boxes"].float().cpu().tolist(),
            output["scores"].float().cpu().tolist(),
            output["labels"].cpu().tolist(),
            strict=True,
        ):
            name = label_of(self._labels, int(label))
            if score >= self.cfg.min_score and (not self.cfg.keep or name in self.cfg.keep):
                found.append(Detection.from_pixels(name, score, box, width, height))
        return found

    def explain(self, images: Sequence[Image]) -> list[np.ndarray[Any, np.dtype[np.float32]]]:
        """Where the backbone looked: EigenCAM (grad-cam) of its last feature layer, per image, 0..1.

        The map is of the model's resized input scaled back to the image: exact for SSD
        (a plain resize), up to the padding to a multiple of 32 for the R-CNN family.
        """
        if self._model is None:
            raise RuntimeError(f"{self.name} used before load()")
        import torch
        from pytorch_grad_cam import EigenCAM

        model = self._model

        class Scores(torch.nn.Module):
            """grad-cam wants one tensor out; EigenCAM reads only the layer's activations."""

            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, batch: Any) -> Any:
                return torch.stack([out["scores"].sum() for out in self.model(list(batch))])[:, None]

        body = getattr(model.backbone, "body", None)  # FPN models; SSDs have ``features``
        layer = list(body.children())[-1] if body is not None else model.backbone.features[-1]
        dtype = torch_dtype(self.cfg.precision if self.cfg.precision != "int8" else None)
        with EigenCAM(Scores(), target_layers=[layer]) as cam:
            return [
                np.asarray(cam(input_tensor=to_tensor(image, self._device, dtype)[None])[0], np.float32)
                for image in images
            ]

    def close(self) -> None:
        self._model = None
