"""A test analyzer that reports a scene's true boxes the way a sparse detector would.

Loaded by ``camsight run`` through ``services.detector.plugin_modules``, so
the boxes travel the real pipeline (decoder, host, bus, behavior). It reads
the truth written by the test (one list of boxes per frame) and drops each
box with probability ``drop``, jitters and pads the rest, and scores them
like a HOG-style detector: what the issue calls HOG-like sparse detections.
Deterministic for a given seed, frame and object.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from functools import cached_property

from camsight.analyzers import (
    AnalyzerConfig,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
    hookimpl,
)
from pydantic import Field


class TruthConfig(AnalyzerConfig):
    truth: str = Field(description="JSON file: for every frame, the true boxes [x1, y1, x2, y2]")
    fps: float = Field(10.0, gt=0)
    drop: float = Field(0.5, ge=0, le=1, description="probability that a box is missed")
    jitter: float = Field(0.01, ge=0, description="box coordinate noise (normalised, std)")
    seed: int = 1
    scores: tuple[float, float] = Field((0.6, 0.95), description="range the scores are drawn from")


class SparseTruth(FrameAnalyzer):
    name = "sparse_truth"
    kind = "objects"
    version = "1"
    Config = TruthConfig

    @property
    def cfg(self) -> TruthConfig:
        assert isinstance(self.config, TruthConfig)
        return self.config

    @cached_property
    def boxes(self) -> list[list[list[float]]]:
        with open(self.cfg.truth) as f:
            return list(json.load(f))

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        return [self._detect(round(info.media_time * self.cfg.fps)) for info in frames]

    def _detect(self, frame: int) -> list[Detection]:
        found = []
        for i, box in enumerate(self.boxes[frame] if frame < len(self.boxes) else []):
            rng = random.Random(f"{self.cfg.seed}/{frame}/{i}")
            if rng.random() < self.cfg.drop:
                continue
            x1, y1, x2, y2 = (v + rng.gauss(0, self.cfg.jitter) for v in box)
            clipped = [min(1.0, max(0.0, v)) for v in (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))]
            found.append(
                Detection(
                    "person", rng.uniform(*self.cfg.scores), (clipped[0], clipped[1], clipped[2], clipped[3])
                )
            )
        return found


class OtherTruth(SparseTruth):
    """A second analyzer reporting ``person`` on the same camera (tracks and events must not mix)."""

    name = "other_truth"


@hookimpl
def camsight_analyzers() -> list[type[FrameAnalyzer]]:
    return [SparseTruth, OtherTruth]
