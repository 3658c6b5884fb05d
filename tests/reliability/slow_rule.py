"""A test rule type that makes the behavior service slow: ``slow`` spends ``cost_s`` of the
service's own time on every frame (a heavy rule, simulated) and finds nothing.

Registered through an entry point the test writes (a ``*.dist-info`` folder on the
behavior process's ``PYTHONPATH``), as an installed rule plugin would be.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from camsight.analyzers import EventRule, Finding, RuleConfig, TrackView, hookimpl
from pydantic import Field


class SlowConfig(RuleConfig):
    cost_s: float = Field(0.05, ge=0, le=10, description="seconds spent per frame")


class Slow(EventRule):
    name = "slow"
    Config = SlowConfig

    def step(self, t: float, seen: Sequence[TrackView]) -> list[Finding]:
        assert isinstance(self.config, SlowConfig)
        time.sleep(self.config.cost_s)  # the rule's work, blocking as CPU-bound work would
        return []


@hookimpl
def camsight_rules() -> list[type[EventRule]]:
    return [Slow]
