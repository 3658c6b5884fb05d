"""Analyzers that break the plugin contract, for the tests of ``camsight analyze`` (through
``--plugin-module``), of the author kit and of the host: each path must say the same."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from camsight.analyzers import (
    KIND_OBJECTS,
    AnalyzerConfig,
    AnalyzerError,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
    hookimpl,
)


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


def _raise(error: Exception) -> Callable[[Sequence[FrameInfo]], Any]:
    def analyze(frames: Sequence[FrameInfo]) -> Any:
        raise error

    return analyze


THING = Detection("thing", 0.9, (0.1, 0.1, 0.5, 0.5))
MISTAKES: dict[str, Callable[[Sequence[FrameInfo]], Any]] = {
    "value_error": _raise(ValueError("boom at seq 25\nwith a second line")),
    "os_error": _raise(OSError("the model's disk is gone")),
    "analyzer_error": _raise(AnalyzerError("the model refused the input")),
    "short": lambda frames: [[]],  # one list, whatever the batch
    "tuples": lambda frames: [[("thing", 0.9)] for _ in frames],
    "flat": lambda frames: [THING for _ in frames],  # a detection per frame, not a list of them
    "none": lambda frames: None,
    "generator": lambda frames: ([] for _ in frames),
    "int_attribute": lambda frames: [[Detection("thing", 0.9, attributes={"n": 3})] for _ in frames],
}


class MisbehaveConfig(AnalyzerConfig):
    mistake: Literal[
        "value_error",
        "os_error",
        "analyzer_error",
        "short",
        "tuples",
        "flat",
        "none",
        "generator",
        "int_attribute",
        "load",
    ] = "value_error"


class Misbehaves(FrameAnalyzer):
    """Makes the ``mistake`` of its config in ``analyze`` (``load``: in ``load()``, as a
    plugin whose weights are missing)."""

    name = "cli_misbehaves"
    kind = KIND_OBJECTS
    version = "1"
    Config = MisbehaveConfig

    def load(self) -> None:
        assert isinstance(self.config, MisbehaveConfig)
        if self.config.mistake == "load":
            raise FileNotFoundError("weights missing: /models/misbehaves.pt")

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        assert isinstance(self.config, MisbehaveConfig)
        return MISTAKES[self.config.mistake](frames)


@hookimpl
def camsight_analyzers() -> list[type[FrameAnalyzer]]:
    return [Raises, OutOfContract, Tagged, Misbehaves]
