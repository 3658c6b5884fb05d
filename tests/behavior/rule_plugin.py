"""Rule types of a third party, registered in the tests: one claiming a built-in's name
(refused), two of its own: ``score_above`` (instantaneous findings) and ``score_held`` (a
condition per track, with a lifecycle)."""

from __future__ import annotations

from collections.abc import Sequence

from camsight.analyzers import EventRule, Finding, RuleConfig, TrackView, hookimpl
from pydantic import Field


class ScoreAboveConfig(RuleConfig):
    min: float = Field(ge=0, le=1, description="a track scoring at least this is reported (once)")


class ScoreAbove(EventRule):
    name = "score_above"
    Config = ScoreAboveConfig

    def step(self, t: float, seen: Sequence[TrackView]) -> list[Finding]:
        assert isinstance(self.config, ScoreAboveConfig)
        return [Finding(v, f"score {v.score:.2f}") for v in seen if v.score >= self.config.min]


class ScoreHeld(ScoreAbove):
    """The condition "high" holds for a track while it scores at least ``min``."""

    name = "score_held"

    def step(self, t: float, seen: Sequence[TrackView]) -> list[Finding]:
        assert isinstance(self.config, ScoreAboveConfig)
        found = [v for v in seen if v.score >= self.config.min]
        return [
            Finding(v, f"track {v.number} scores high", {"score": f"{v.score:.3f}"}, "high") for v in found
        ]


class Stolen(ScoreAbove):
    name = "zone_enter"


@hookimpl
def camsight_rules() -> list[type[EventRule]]:
    return [ScoreAbove, ScoreHeld, Stolen]
