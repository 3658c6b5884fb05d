"""camsight's own rule types, registered through the ``camsight_rules`` hook like a plugin's."""

from __future__ import annotations

from camsight.analyzers import hookimpl
from camsight.behavior.rules.actions import ActionRule
from camsight.behavior.rules.base import RuleRunner
from camsight.behavior.rules.lines import LineCross
from camsight.behavior.rules.presence import FaceIdentity, ObjectDetected
from camsight.behavior.rules.zones import Crowding, Loitering, ZoneCrossing


@hookimpl
def camsight_rules() -> list[type[RuleRunner]]:
    return [ObjectDetected, ZoneCrossing, LineCross, Loitering, Crowding, FaceIdentity, ActionRule]
