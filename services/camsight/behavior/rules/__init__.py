"""The rule registry: one runner class per rule type.

A runner's identity for hot reload is its rule together with the zone or
line it names: when that is unchanged, the runner (and its tracks' state)
survives a config update.
"""

from __future__ import annotations

from typing import Any

from camsight.behavior.rules.actions import ActionRule
from camsight.behavior.rules.base import RuleRunner
from camsight.behavior.rules.lines import LineCross
from camsight.behavior.rules.presence import FaceIdentity, ObjectDetected
from camsight.behavior.rules.zones import Crowding, Loitering, ZoneCrossing
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import CameraConfig, Rule, RuleType

RUNNERS: dict[RuleType, type[RuleRunner]] = {
    RuleType.OBJECT_DETECTED: ObjectDetected,
    RuleType.ZONE_ENTER: ZoneCrossing,
    RuleType.ZONE_EXIT: ZoneCrossing,
    RuleType.LINE_CROSS: LineCross,
    RuleType.LOITERING: Loitering,
    RuleType.CROWDING: Crowding,
    RuleType.FACE_RECOGNIZED: FaceIdentity,
    RuleType.UNKNOWN_FACE: FaceIdentity,
    RuleType.ACTION: ActionRule,
}


def spec(rule: Rule, camera: CameraConfig) -> tuple[Any, ...]:
    """What a runner depends on; equal specs mean the runner can be kept."""
    zone = next((z for z in camera.zones if z.id == rule.zone), None)
    line = next((ln for ln in camera.lines if ln.id == rule.line), None)
    return rule, zone, line


def build(rule: Rule, camera: CameraConfig, settings: BehaviorSettings) -> RuleRunner:
    return RUNNERS[rule.type](rule, camera, settings)


__all__ = ["RUNNERS", "RuleRunner", "build", "spec"]
