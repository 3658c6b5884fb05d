"""An example camsight clip analyzer: scene changes (cuts between two shots)."""

from collections.abc import Sequence

import cv2
import numpy as np
from camsight.analyzers import Clip, ClipAnalyzer, ClipConfig, Detection, hookimpl
from pydantic import Field

__version__ = "0.1.0"


class SceneChangeConfig(ClipConfig):
    window: int = Field(default=2, ge=2, le=512, description="frames per window; the last two are compared")
    threshold: float = Field(default=40.0, gt=0, le=255, description="mean grey-level change that is a cut")


class SceneChange(ClipAnalyzer):
    """Reports ``cut`` for a window whose last two frames differ by more than the threshold."""

    name = "scene_change"
    kind = "actions"
    version = __version__
    Config = SceneChangeConfig

    def analyze_clips(self, clips: Sequence[Clip]) -> list[list[Detection]]:
        return [self.cut(clip) for clip in clips]

    def cut(self, clip: Clip) -> list[Detection]:
        assert isinstance(self.config, SceneChangeConfig)
        before, after = (cv2.cvtColor(i, cv2.COLOR_BGR2GRAY).astype(np.float32) for i in clip.images[-2:])
        change = float(np.abs(after - before).mean())
        if change < self.config.threshold:
            return []
        # No box: a label of the whole picture (a scene label), for the window ending at clip.frames[-1].
        return [Detection("cut", min(1.0, change / 128))]


@hookimpl
def camsight_analyzers() -> list[type[ClipAnalyzer]]:
    return [SceneChange]
