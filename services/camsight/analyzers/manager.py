"""Plugin discovery and registry: every pluggy detail of camsight lives here.

Plugins provide analyzers (``camsight_analyzers``), rule types (``camsight_rules``) and
camera source schemes (``camsight_sources``); the behavior service and the decoder add
camsight's own rule types and schemes as plugins too, so one table holds each kind.

Plugins come from the ``camsight`` entry-point group (built-ins included,
exactly like third-party packages) or are added explicitly as modules
(tests, embedded use). A plugin that cannot be imported, or whose hook
raises, is recorded in :attr:`PluginManager.errors` and skipped: one
broken package must not take every analyzer down.

A plugin whose distribution declares an extra named like its entry point
(``camsight[torch]`` for the ``torch`` plugin) needs that extra's packages: when
one is missing the plugin is not imported and is listed in
:attr:`PluginManager.unavailable` with the command that installs them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pluggy
from packaging.requirements import InvalidRequirement, Requirement
from pydantic import ValidationError

from camsight.analyzers import hookspecs
from camsight.analyzers.api import Analyzer, AnalyzerError, ClipAnalyzer, FrameAnalyzer, Precision
from camsight.naming import InvalidIdError, validate_id

log = logging.getLogger(__name__)


@dataclass
class AnalyzerInfo:
    """One analyzer class as a plugin declares it."""

    name: str
    kind: str
    version: str
    clip: bool
    plugin: str
    cls: type[Analyzer]


@dataclass
class PluginInfo:
    """One plugin: where it comes from and what it provides."""

    name: str
    module: str
    version: str
    analyzers: list[AnalyzerInfo] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    """The rule types it declares (``camsight_rules``)."""
    sources: list[str] = field(default_factory=list)
    """The source schemes it declares (``camsight_sources``)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "version": self.version,
            "analyzers": [
                {"name": a.name, "kind": a.kind, "version": a.version, "clip": a.clip} for a in self.analyzers
            ],
            "rules": self.rules,
            "sources": self.sources,
        }


BUILTIN_RULES = "camsight-rules"
"""Plugin name under which the behavior service registers camsight's own rule types."""
BUILTIN_SOURCES = "camsight-sources"
"""Plugin name under which the decoder registers camsight's own source schemes."""


@dataclass(frozen=True)
class TypeInfo:
    """One rule type or source scheme as a plugin declares it."""

    name: str
    plugin: str
    cls: type[Any]


class PluginManager:
    """Finds plugins and the analyzers, rule types and source schemes they provide.

    ``disabled`` names plugins (entry-point names or explicit module
    names) that must not be loaded at all.
    """

    def __init__(self, disabled: Iterable[str] = ()) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._disabled = set(disabled)
        self._versions: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        """Plugin name -> why it could not be used."""
        self.unavailable: dict[str, str] = {}
        """Plugin name -> what it lacks and the command that installs it (its extra is missing)."""
        self.type_errors: dict[str, str] = {}
        """Plugin name -> why a rule type or source scheme it declares cannot be used."""

    def load_entry_points(self) -> None:
        """Import every plugin registered in the ``camsight`` entry-point group."""
        for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
            if ep.name in self._disabled or self._pm.has_plugin(ep.name):
                continue
            lacking = missing_extra(ep)
            if lacking:
                self.unavailable[ep.name] = lacking
                log.info("plugin %s is unavailable: %s", ep.name, lacking)
                continue
            try:
                module = ep.load()
            except Exception as exc:
                self._fail(ep.name, f"cannot import {ep.value}: {type(exc).__name__}: {exc}")
                continue
            version = ep.dist.version if ep.dist is not None else _module_version(module)
            self.add(module, name=ep.name, version=version)

    def add(
        self, plugin: types.ModuleType | object, name: str | None = None, version: str | None = None
    ) -> None:
        """Register a plugin module (or object with hook implementations) explicitly."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if name in self._disabled:
            return
        if self._pm.has_plugin(name):
            raise AnalyzerError(f"plugin {name!r} is registered twice")
        self._pm.register(plugin, name=name)
        self._versions[name] = version or _module_version(plugin)

    def plugins(self) -> list[PluginInfo]:
        """Every registered plugin with the analyzers it declares, sorted by name."""
        infos: dict[str, PluginInfo] = {}
        for plugin_name, plugin in self._pm.list_name_plugin():
            if plugin is None:  # blocked
                continue
            info = PluginInfo(
                plugin_name, getattr(plugin, "__name__", type(plugin).__name__), self._versions[plugin_name]
            )
            infos[plugin_name] = info
        for impl in self._pm.hook.camsight_analyzers.get_hookimpls():
            info = infos[impl.plugin_name]
            try:
                classes = list(cast(Iterable[Any], impl.function() or ()))
                info.analyzers = [_describe(cls, impl.plugin_name) for cls in classes]
            except Exception as exc:
                self._fail(impl.plugin_name, f"camsight_analyzers() failed: {type(exc).__name__}: {exc}")
        try:
            for rule in self.rule_types().values():
                if rule.plugin in infos:
                    infos[rule.plugin].rules.append(rule.name)
            for source in self.source_types().values():
                if source.plugin in infos:
                    infos[source.plugin].sources.append(source.name)
        except AnalyzerError as exc:
            log.error("%s", exc)
        return sorted((i for i in infos.values() if i.name not in self.errors), key=lambda i: i.name)

    def analyzers(self) -> dict[str, AnalyzerInfo]:
        """Analyzer name -> declaration, without the names two plugins declare (see
        :meth:`clashes`): a clash blocks that name only, every other analyzer stays usable."""
        found = self._declared()
        return {name: infos[0] for name, infos in found.items() if len(infos) == 1}

    def clashes(self) -> dict[str, list[str]]:
        """Analyzer name -> the plugins that all declare it (sorted), for the names declared twice or more."""
        return {
            name: sorted(info.plugin for info in infos)
            for name, infos in self._declared().items()
            if len(infos) > 1
        }

    def _declared(self) -> dict[str, list[AnalyzerInfo]]:
        found: dict[str, list[AnalyzerInfo]] = {}
        for plugin in self.plugins():
            for info in plugin.analyzers:
                found.setdefault(info.name, []).append(info)
        return found

    def rule_types(self) -> dict[str, TypeInfo]:
        """Rule type name -> declaration, from every plugin's ``camsight_rules``."""
        return self._types("camsight_rules", "rule type", BUILTIN_RULES)

    def source_types(self) -> dict[str, TypeInfo]:
        """URI scheme -> declaration, from every plugin's ``camsight_sources``."""
        return self._types("camsight_sources", "source scheme", BUILTIN_SOURCES)

    def _types(self, hook: str, what: str, builtin_plugin: str) -> dict[str, TypeInfo]:
        """Name -> declaration, through pluggy's hook call. A declaration that is no class, or
        whose name is not a name, and a name two plugins declare, are recorded in
        :attr:`type_errors` and left out; a name camsight's own plugin declares stays its own."""
        plugins = [(name, plugin) for name, plugin in self._pm.list_name_plugin() if plugin is not None]
        # A plugin module owns the classes of its package (a module's package: the module
        # itself for a package, its parent for a plain module); its own module first.
        owners = {_home(plugin): name for name, plugin in plugins}
        owners.update({getattr(plugin, "__name__", None): name for name, plugin in plugins})
        found: dict[str, list[TypeInfo]] = {}
        try:
            declarations = getattr(self._pm.hook, hook)()
        except Exception as exc:  # one raising hook fails pluggy's whole call: say so, in one line
            raise AnalyzerError(f"a {hook} hook raised {type(exc).__name__}: {exc}") from None
        for declared in declarations:
            for cls in declared or ():
                plugin = _owner(cls, owners)
                try:
                    for name in _declared_names(cls, hook, what):
                        found.setdefault(name, []).append(TypeInfo(name, plugin, cls))
                except (AnalyzerError, InvalidIdError) as exc:
                    self.type_errors[plugin] = str(exc)
        types: dict[str, TypeInfo] = {}
        for name, infos in found.items():
            builtin = [i for i in infos if i.plugin == builtin_plugin]
            for info in infos:
                if builtin and info not in builtin:
                    self.type_errors[info.plugin] = (
                        f"plugin {info.plugin!r} declares {what} {name!r}, which camsight's own "
                        f"{builtin_plugin} owns: rename it"
                    )
            if builtin or len(infos) == 1:
                types[name] = (builtin or infos)[0]
            else:
                both = " and ".join(f"plugin {i.plugin!r}" for i in infos)
                for info in infos:
                    self.type_errors[info.plugin] = f"{what} {name!r} is declared by both {both}"
        return types

    def create(
        self,
        name: str,
        config: Mapping[str, Any] | None = None,
        device: str = "auto",
        precision: Precision = "fp32",
    ) -> Analyzer:
        """Instantiate analyzer ``name`` with ``config`` validated by its ``Config`` model.

        ``device`` and ``precision`` fill in what the analyzer's own config
        leaves unset. Raises :class:`AnalyzerError` naming the problem.
        """
        clash = self.clashes().get(name)
        if clash:
            raise AnalyzerError(clash_message(name, clash))
        available = self.analyzers()
        if name not in available:
            known = ", ".join(sorted(available)) or "none"
            broken = "; ".join(f"{p}: {e}" for p, e in sorted(self.errors.items()))
            missing = "; ".join(f"{p}: {e}" for p, e in sorted(self.unavailable.items()))
            raise AnalyzerError(
                f"no analyzer named {name!r} (available: {known})"
                + (f"; unavailable plugins: {missing}" if missing else "")
                + (f"; broken plugins: {broken}" if broken else "")
            )
        return instantiate(available[name].cls, config, device, precision)

    def _fail(self, plugin: str, reason: str) -> None:
        log.error("plugin %s is unusable: %s", plugin, reason)
        self.errors[plugin] = reason


def instantiate(
    cls: type[Analyzer],
    config: Mapping[str, Any] | None = None,
    device: str = "auto",
    precision: Precision = "fp32",
) -> Analyzer:
    """Validate ``config`` with ``cls.Config``, fill device/precision defaults, construct."""
    try:
        validated = cls.Config.model_validate(dict(config or {}))
    except ValidationError as exc:
        raise AnalyzerError(f"invalid config for analyzer {cls.name!r}: {problems(exc)}") from None
    updates = {
        k: v for k, v in (("device", device), ("precision", precision)) if getattr(validated, k) is None
    }
    return cls(validated.model_copy(update=updates))


def problems(exc: ValidationError) -> str:
    """A plugin config's validation errors on one line: ``field: message; other: message``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(config)'}: {err['msg']}" for err in exc.errors()
    )


def _describe(cls: Any, plugin: str) -> AnalyzerInfo:
    if not (isinstance(cls, type) and issubclass(cls, FrameAnalyzer | ClipAnalyzer)):
        raise AnalyzerError(f"{cls!r} is not a FrameAnalyzer or ClipAnalyzer subclass")
    for attr in ("name", "kind"):
        if not isinstance(getattr(cls, attr, None), str):
            raise AnalyzerError(f"analyzer class {cls.__name__} does not declare {attr!r}")
    validate_id(cls.name, "analyzer name")
    return AnalyzerInfo(cls.name, cls.kind, cls.version, cls.clip, plugin, cls)


def clash_message(name: str, plugins: Sequence[str]) -> str:
    """One line saying which plugins declare analyzer ``name`` and how to settle it."""
    both = " and ".join(f"plugin {p!r}" for p in plugins)
    return (
        f"analyzer {name!r} is provided by both {both}: disable one of them "
        f"(disabled_plugins: [{plugins[-1]}], or camsight analyze --disable {plugins[-1]})"
    )


def _owner(cls: Any, owners: Mapping[str | None, str]) -> str:
    """The plugin owning ``cls``'s module or the nearest package above it (pluggy's hook call
    gives results without their plugin); else the class's module."""
    module = str(getattr(cls, "__module__", ""))
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        plugin = owners.get(".".join(parts[:depth]))
        if plugin is not None:
            return plugin
    return module


def _home(plugin: object) -> str | None:
    """The package a plugin module's rule classes may live in."""
    name = getattr(plugin, "__name__", None)
    if name is None or hasattr(plugin, "__path__"):
        return name
    return name.rpartition(".")[0] or name


def _declared_names(cls: Any, hook: str, what: str) -> tuple[str, ...]:
    """The names a class declares: ``name`` (a rule type), ``scheme`` (a source), or ``names``
    (a built-in serving several)."""
    if not isinstance(cls, type):
        raise AnalyzerError(f"{hook}() returned {cls!r}, not a class")
    names = getattr(cls, "names", None) or (getattr(cls, "name", None) or getattr(cls, "scheme", None),)
    for name in names:
        if not isinstance(name, str):
            raise AnalyzerError(f"{cls.__name__} does not declare its {what}")
        validate_id(name, what)
    return tuple(str(name) for name in names)  # a built-in's StrEnum as its plain name


def missing_extra(ep: importlib.metadata.EntryPoint) -> str:
    """What entry point ``ep``'s plugin lacks, as "needs torch, onnx2torch: pip install
    'camsight[torch]'"; "" when its distribution has no extra named like it, or has it all."""
    if ep.dist is None or ep.name not in (ep.dist.metadata.get_all("Provides-Extra") or []):
        return ""
    lacking = []
    for line in ep.dist.requires or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if (
            req.marker is None
            or not req.marker.evaluate({"extra": ep.name})
            or req.marker.evaluate({"extra": ""})
        ):
            continue  # not this extra's (or needed without it)
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            lacking.append(req.name)
            continue
        if not req.specifier.contains(version, prereleases=True):
            lacking.append(f"{req.name}{req.specifier} (found {version})")
    if not lacking:
        return ""
    return f"needs {', '.join(lacking)}: pip install '{ep.dist.name}[{ep.name}]'"


def _module_version(plugin: object) -> str:
    return str(getattr(plugin, "__version__", "0"))


def default_manager(disabled: Iterable[str] = (), extra: Iterable[str] = ()) -> PluginManager:
    """Entry-point plugins plus ``extra`` modules imported by dotted name."""
    manager = PluginManager(disabled)
    manager.load_entry_points()
    for module_name in extra:
        try:
            manager.add(importlib.import_module(module_name), name=module_name)
        except Exception as exc:
            manager._fail(module_name, f"cannot import {module_name}: {type(exc).__name__}: {exc}")
    return manager
