"""The rule registry: rule type name -> runner, from every plugin's ``camsight_rules`` hook.

camsight's own types come from :mod:`camsight.behavior.rules.builtin` through
the same hook as a plugin's. A runner's identity for hot reload is its rule
together with the zone or line it names: when that is unchanged, the runner
(and its tracks' state) survives a config update.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from camsight.analyzers.manager import (
    BUILTIN_RULES,
    PluginManager,
    TypeInfo,
    default_manager,
    problems,
)
from camsight.analyzers.rules import EventRule
from camsight.behavior.rules import builtin
from camsight.behavior.rules.base import RuleRunner
from camsight.behavior.rules.plugin import PluginRule
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import CameraConfig, Rule
from camsight.config import ConfigError


class RuleError(ValueError):
    """A configured rule that cannot run: unknown type, or a config its plugin refuses. One line."""


class RuleRegistry:
    """The rule types a behavior service can run."""

    def __init__(self, manager: PluginManager) -> None:
        manager.add(builtin, name=BUILTIN_RULES)
        self.types: dict[str, TypeInfo] = manager.rule_types()
        self.errors = manager.type_errors
        """Plugin -> why its rule types are refused (a built-in's name, a clash, not a class)."""

    @classmethod
    def load(cls, disabled: Iterable[str] = ()) -> RuleRegistry:
        """Built-ins plus every installed plugin's rule types but the ``disabled`` plugins'."""
        return cls(default_manager(disabled))

    def build(self, rule: Rule, camera: CameraConfig, settings: BehaviorSettings) -> RuleRunner:
        """The runner of ``rule`` on ``camera``; :class:`RuleError` naming the rule (and plugin)."""
        info = self.types.get(rule.type_name)
        if info is None:
            known = ", ".join(sorted(self.types))
            refused = "".join(f"; {problem}" for problem in sorted(self.errors.values()))
            raise RuleError(
                f"rule {rule.id!r}: no rule type {rule.type_name!r} (available: {known}){refused}"
            )
        if issubclass(info.cls, RuleRunner):
            return info.cls(rule, camera, settings)
        if not issubclass(info.cls, EventRule):
            raise RuleError(f"rule type {info.name!r} of plugin {info.plugin!r} is not an EventRule subclass")
        try:
            config = info.cls.Config.model_validate(rule.config)
        except ValidationError as exc:
            raise RuleError(
                f"rule {rule.id!r}: invalid config for rule type {info.name!r} "
                f"(plugin {info.plugin!r}): {problems(exc)}"
            ) from None
        return PluginRule(rule, camera, settings, info.cls(config), info.plugin)

    def plugin_packages(self) -> tuple[str, ...]:
        """The packages a camera's state may hold objects of besides camsight's: the plugin
        rule API and each rule plugin's top-level package (for restoring checkpoints)."""
        plugins = {
            info.cls.__module__.partition(".")[0]
            for info in self.types.values()
            if info.plugin != BUILTIN_RULES
        }
        return ("camsight.analyzers.rules", *sorted(plugins))

    def check(self, cameras: Iterable[CameraConfig], settings: BehaviorSettings) -> None:
        """Build every rule of ``cameras`` once: the first that cannot run raises its :class:`RuleError`
        prefixed with the camera (start-up checks a config file's cameras this way)."""
        for camera in cameras:
            for rule in camera.rules:
                try:
                    self.build(rule, camera, settings)
                except RuleError as exc:
                    raise RuleError(f"camera {camera.id!r}: {exc}") from None


def checked_registry(
    disabled: Iterable[str], cameras: Iterable[CameraConfig], settings: BehaviorSettings
) -> RuleRegistry:
    """The rule types of the installed plugins but ``disabled``, once every rule of ``cameras``
    was built with them: a bad one is a :class:`ConfigError` (exit 2 at start-up), one line."""
    registry = RuleRegistry.load(disabled)
    try:
        registry.check(cameras, settings)
    except RuleError as exc:
        raise ConfigError(f"cameras: {exc}") from None
    return registry


@functools.cache
def default_registry() -> RuleRegistry:
    """Every installed plugin's rule types (for engines built without a service, in tests and tools)."""
    return RuleRegistry.load()


def spec(rule: Rule, camera: CameraConfig) -> tuple[Any, ...]:
    """What a runner depends on; equal specs mean the runner can be kept."""
    zone = next((z for z in camera.zones if z.id == rule.zone), None)
    line = next((ln for ln in camera.lines if ln.id == rule.line), None)
    return rule, zone, line


__all__ = ["RuleError", "RuleRegistry", "RuleRunner", "checked_registry", "default_registry", "spec"]
