"""People detection with OpenCV's HOG descriptor and its built-in linear SVM (Dalal-Triggs).

The weights ship inside OpenCV (``HOGDescriptor_getDefaultPeopleDetector``):
nothing to download. It finds upright, reasonably large people; it is a
CPU baseline, not a modern detector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
from camsight.analyzers import KIND_OBJECTS, AnalyzerConfig, Detection, FrameAnalyzer, FrameInfo, Image
from pydantic import Field

from camsight_opencv.common import shrink


class HogConfig(AnalyzerConfig):
    max_width: int = Field(
        default=640,
        ge=64,
        description=(
            "wider images are shrunk to this width before "
            "detection (pixels); smaller is faster but misses small people"
        ),
    )
    win_stride: int = Field(
        default=8,
        ge=4,
        le=32,
        description=(
            "step of the 64x128 detection window (pixels of the shrunk image); smaller finds more, slower"
        ),
    )
    padding: int = Field(
        default=8, ge=0, le=64, description="border added around each window before it is scored (pixels)"
    )
    scale: float = Field(
        default=1.05,
        gt=1.0,
        le=2.0,
        description=(
            "image pyramid step: each level is this much smaller; closer to 1 finds more sizes, slower"
        ),
    )
    min_score: float = Field(
        default=0.5, ge=0.0, le=1.0, description="minimum score, sigmoid of the SVM margin (0 to 1)"
    )
    nms_threshold: float = Field(
        default=0.45,
        ge=0.0,
        le=1.0,
        description="overlap (IoU) above which the weaker of two boxes is dropped",
    )


class HogPeople(FrameAnalyzer):
    """HOG + SVM people detector; score is the logistic of the SVM margin."""

    name = "hog"
    kind = KIND_OBJECTS
    version = f"0.1.0+opencv{cv2.__version__}"
    Config = HogConfig

    def __init__(self, config: AnalyzerConfig | None = None) -> None:
        super().__init__(config)
        self._hog: cv2.HOGDescriptor | None = None

    @property
    def cfg(self) -> HogConfig:
        assert isinstance(self.config, HogConfig)
        return self.config

    def load(self) -> None:
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32))
        self._hog = hog

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        return [self._detect(image) for image in images]

    def _detect(self, image: Image) -> list[Detection]:
        if self._hog is None:
            raise RuntimeError("hog analyzer used before load()")
        cfg = self.cfg
        small, _ = shrink(image, cfg.max_width)
        height, width = small.shape[:2]
        if height < 128 or width < 64:  # smaller than one detection window
            return []
        rects, weights = self._hog.detectMultiScale(
            small,
            winStride=(cfg.win_stride, cfg.win_stride),
            padding=(cfg.padding, cfg.padding),
            scale=cfg.scale,
        )
        if len(rects) == 0:
            return []
        scores = [1.0 / (1.0 + math.exp(-float(w))) for w in np.ravel(weights)]
        boxes = [[int(v) for v in r] for r in rects]
        keep = cv2.dnn.NMSBoxes(boxes, scores, cfg.min_score, cfg.nms_threshold)
        return [
            Detection.from_pixels("person", scores[i], (x, y, x + w, y + h), width, height)
            for i in np.ravel(keep)
            for x, y, w, h in [boxes[i]]
        ]

    def close(self) -> None:
        self._hog = None
