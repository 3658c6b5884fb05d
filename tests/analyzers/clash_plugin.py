"""A third-party plugin whose ``motion`` clashes with the built-in one, beside an analyzer of its
own (``red_objects``), loaded through ``plugin_modules`` / ``--plugin-module``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from camsight.analyzers import KIND_MOTION, KIND_OBJECTS, Detection, FrameAnalyzer, FrameInfo, Image, hookimpl


class RedObjects(FrameAnalyzer):
    """The whole frame as one ``red`` detection when red dominates it (score = red share)."""

    name = "red_objects"
    kind = KIND_OBJECTS

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        return [self._red(image) for image in images]

    @staticmethod
    def _red(image: Image) -> list[Detection]:
        blue, green, red = (float(np.mean(image[..., c])) for c in range(3))
        share = red / (blue + green + red or 1.0)
        return [Detection("red", share, (0.0, 0.0, 1.0, 1.0))] if share > 0.5 else []


class Motion(FrameAnalyzer):
    """Claims the built-in analyzer's name; answers ``always`` on every frame, so a test can
    tell which ``motion`` ran."""

    name = "motion"
    kind = KIND_MOTION

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        return [[Detection("always", 1.0, (0.0, 0.0, 1.0, 1.0))] for _ in images]


@hookimpl
def camsight_analyzers() -> list[type[FrameAnalyzer]]:
    return [RedObjects, Motion]
