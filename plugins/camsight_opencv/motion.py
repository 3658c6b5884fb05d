"""Moving regions from MOG2 background subtraction, one background model per camera.

Frames of one camera must arrive in order (the host keeps stream order);
the first ``warmup`` frames of a camera only train the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from camsight.analyzers import KIND_MOTION, AnalyzerConfig, Detection, FrameAnalyzer, FrameInfo, Image
from pydantic import Field

from camsight_opencv.common import shrink


class MotionConfig(AnalyzerConfig):
    max_width: int = Field(
        default=320,
        ge=32,
        description="wider images are shrunk to this width before background subtraction (pixels)",
    )
    history: int = Field(
        default=200,
        ge=1,
        description="frames the background model remembers; longer adapts slower to lighting changes",
    )
    var_threshold: float = Field(
        default=16.0,
        gt=0,
        description=(
            "MOG2 variance threshold: squared distance from the "
            "background model that counts as motion; higher ignores more noise"
        ),
    )
    min_area: float = Field(
        default=0.002,
        ge=0,
        le=1,
        description="smallest moving region reported, as a fraction of the image area (0 to 1)",
    )
    merge_gap: float = Field(
        default=0.03,
        ge=0,
        le=0.5,
        description=(
            "moving regions closer than this, as a fraction of the image width, are joined into one "
            "(a person swaying in place shows as slivers on both sides of the body); 0 joins nothing"
        ),
    )
    warmup: int = Field(
        default=2,
        ge=1,
        description="first frames of each camera used only to learn the background (nothing reported)",
    )


class Motion(FrameAnalyzer):
    """Label ``motion``; score = fraction of the box covered by foreground pixels."""

    name = "motion"
    kind = KIND_MOTION
    version = f"0.1.0+opencv{cv2.__version__}"
    Config = MotionConfig

    def __init__(self, config: AnalyzerConfig | None = None) -> None:
        super().__init__(config)
        self._models: dict[str, tuple[cv2.BackgroundSubtractorMOG2, list[int]]] = {}
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

    @property
    def cfg(self) -> MotionConfig:
        assert isinstance(self.config, MotionConfig)
        return self.config

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        return [self._detect(image, info.camera_id) for image, info in zip(images, frames, strict=True)]

    def _detect(self, image: Image, camera_id: str) -> list[Detection]:
        cfg = self.cfg
        if camera_id not in self._models:
            subtractor = cv2.createBackgroundSubtractorMOG2(
                cfg.history, cfg.var_threshold, detectShadows=True
            )
            self._models[camera_id] = (subtractor, [0])
        subtractor, seen = self._models[camera_id]
        small, _ = shrink(image, cfg.max_width)
        mask = subtractor.apply(small)
        seen[0] += 1
        if seen[0] <= cfg.warmup:
            return []
        _, mask = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)  # drop shadows (127)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        mask = cv2.dilate(mask, self._kernel, iterations=2)
        height, width = mask.shape[:2]
        if cfg.merge_gap > 0:
            gap = round(cfg.merge_gap * width) | 1  # odd, in pixels of the shrunk image
            closing = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (gap, gap))
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, closing)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        found = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if w * h < cfg.min_area * width * height:
                continue
            fill = float(np.count_nonzero(mask[y : y + h, x : x + w])) / float(w * h)
            found.append(Detection.from_pixels("motion", fill, (x, y, x + w, y + h), width, height))
        return found

    def close(self) -> None:
        self._models.clear()
