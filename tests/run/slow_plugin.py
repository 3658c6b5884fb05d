"""Misbehaving test analyzers, loaded by ``camsight run`` through
``services.detector.plugin_modules``: ``slow`` spends ``cost_s`` per frame (simulated
model work) and finds nothing; ``broken`` fails to load, as a plugin whose weights
are missing does; ``hang`` never returns from ``analyze`` (a model stuck in a driver
call), once it wrote its ``marker`` file."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from camsight.analyzers import (
    KIND_OBJECTS,
    AnalyzerConfig,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
    hookimpl,
)
from pydantic import Field


class SlowConfig(AnalyzerConfig):
    cost_s: float = Field(0.05, ge=0, le=10, description="seconds spent per frame")


class SlowAnalyzer(FrameAnalyzer):
    name = "slow"
    kind = KIND_OBJECTS
    version = "1"
    Config = SlowConfig

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        assert isinstance(self.config, SlowConfig)
        time.sleep(self.config.cost_s * len(images))
        return [[] for _ in images]


class BrokenAnalyzer(FrameAnalyzer):
    name = "broken"
    kind = KIND_OBJECTS
    version = "1"

    def load(self) -> None:
        raise FileNotFoundError("weights missing: /models/broken.pt")

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        raise AssertionError("never loaded, never called")


class HangConfig(AnalyzerConfig):
    marker: Path = Field(description="written on entering analyze(): the test's sign that it is stuck there")


class HangingAnalyzer(FrameAnalyzer):
    name = "hang"
    kind = KIND_OBJECTS
    version = "1"
    Config = HangConfig

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        assert isinstance(self.config, HangConfig)
        self.config.marker.write_text("in analyze()")
        time.sleep(600)  # what nothing interrupts: not Ctrl-C, not the host
        return [[] for _ in images]


@hookimpl
def camsight_analyzers() -> Sequence[type[FrameAnalyzer]]:
    return [SlowAnalyzer, BrokenAnalyzer, HangingAnalyzer]
