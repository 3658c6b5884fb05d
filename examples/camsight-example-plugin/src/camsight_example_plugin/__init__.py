"""An example camsight plugin: bright spots (lamps, headlights, reflections)."""

from collections.abc import Sequence

import cv2
from camsight.analyzers import AnalyzerConfig, Detection, FrameAnalyzer, FrameInfo, Image, hookimpl
from pydantic import Field

__version__ = "0.1.0"


class BrightSpotsConfig(AnalyzerConfig):
    threshold: int = Field(default=220, ge=0, le=255, description="minimum grey level of a spot")
    min_area: int = Field(default=20, ge=1, description="minimum spot area in pixels")


class BrightSpots(FrameAnalyzer):
    """Finds regions brighter than a threshold; score = mean brightness of the spot."""

    name = "bright_spots"
    kind = "objects"
    version = __version__
    Config = BrightSpotsConfig

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        return [self.spots(image) for image in images]

    def spots(self, image: Image) -> list[Detection]:
        assert isinstance(self.config, BrightSpotsConfig)
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        _, mask = cv2.threshold(grey, self.config.threshold, 255, cv2.THRESH_BINARY)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        height, width = grey.shape
        found = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if w * h >= self.config.min_area:
                score = float(grey[y : y + h, x : x + w].mean()) / 255
                found.append(Detection.from_pixels("bright_spot", score, (x, y, x + w, y + h), width, height))
        return found


@hookimpl
def camsight_analyzers() -> list[type[FrameAnalyzer]]:
    return [BrightSpots]
