"""Analyzers that break the plugin contract, for ``camsight analyze --plugin-module`` tests."""

from __future__ import annotations

from collections.abc import Sequence

from camsight.analyzers import KIND_OBJECTS, Detection, FrameAnalyzer, FrameInfo, Image, hookimpl


class Raises(FrameAnalyzer):
    name = "cli_raises"
    kind = KIND_OBJECTS

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        raise RuntimeError("model exploded\nwith a second line")


class OutOfContract(FrameAnalyzer):
    name = "cli_out_of_contract"
    kind = KIND_OBJECTS

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        return [[Detection("thing", 1.7, (0.1, 0.1, 0.5, 0.5), attributes={"colour": "red"})] for _ in frames]


class Tagged(FrameAnalyzer):
    name = "cli_tagged"
    kind = KIND_OBJECTS

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        return [[Detection("thing", 0.9, (0.1, 0.1, 0.5, 0.5), attributes={"colour": "red"})] for _ in frames]


@hookimpl
def camsight_analyzers() -> list[type[FrameAnalyzer]]:
    return [Raises, OutOfContract, Tagged]
