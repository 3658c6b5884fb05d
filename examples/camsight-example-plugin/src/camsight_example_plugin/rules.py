"""A custom behaviour rule of the example plugin: tracks going the wrong way."""

from collections.abc import Sequence
from typing import Literal

from camsight.analyzers import EventRule, Finding, RuleConfig, TrackView, hookimpl
from pydantic import Field

AXES = {"right": (0, 1), "left": (0, -1), "down": (1, 1), "up": (1, -1)}


class WrongWayConfig(RuleConfig):
    allowed: Literal["left", "right", "up", "down"] = Field(description="the way traffic may go")
    min_distance: float = Field(default=0.2, gt=0, le=1, description="normalised distance the other way")


class WrongWay(EventRule):
    """Reports a track while its recent path went ``min_distance`` against the allowed way."""

    name = "wrong_way"
    Config = WrongWayConfig

    def step(self, t: float, seen: Sequence[TrackView]) -> list[Finding]:
        assert isinstance(self.config, WrongWayConfig)
        axis, sign = AXES[self.config.allowed]
        found = []
        for track in seen:
            against = sign * (track.path[0][axis] - track.path[-1][axis])
            if against >= self.config.min_distance:
                summary = f"{track.label} track {track.number} is going the wrong way"
                found.append(Finding(track, summary, {"distance": f"{against:.3f}"}, key="wrong_way"))
        return found


@hookimpl
def camsight_rules() -> list[type[EventRule]]:
    return [WrongWay]
