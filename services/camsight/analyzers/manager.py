"""Plugin discovery and registry: every pluggy detail of camsight lives here.

Plugins provide analyzers (``camsight_analyzers``), rule types (``camsight_rules``) and
camera source schemes (``camsight_sources``); the behavior service and the decoder add
camsight's own rule types and schemes as plugins too, so one table holds each kind.

Plugins come from the ``camsight`` entry-point group (built-ins included,
exactly like third-party packages) or are added explicitly as modules
(tests, embedded use). A plugin that cannot be imported, or whose hook
raises or returns something else than a list of classes, is recorded in
:attr:`PluginManager.errors` (logged once) and skipped: one broken package
must not take every analyzer, rule type or source down. So is an entry point
that takes the name of another distribution's (camsight's own plugin wins).

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pluggy
from packaging.requirements import InvalidRequirement, Requirement
from pydantic import ValidationError

from camsight.analyzers import hookspecs
from camsight.analyzers.api import (
    Analyzer,
    AnalyzerError,
    ClipAnalyzer,
    FrameAnalyzer,
    Precision,
    described,
    is_sequence,
)
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
RESERVED = frozenset({BUILTIN_RULES, BUILTIN_SOURCES})
"""Plugin names camsight registers itself: no entry point may take them."""
OWN_DISTRIBUTION = "camsight"
"""camsight's own distribution, whose entry points (opencv, torch, faces) are its built-in plugins."""
DISABLE_IN_CONFIG = "disabled_plugins: [{plugin}]"
"""How a configuration disables a plugin: the advice of clash messages in services and ``camsight run``."""
ANALYZERS_HOOK = "camsight_analyzers"
HOOKS = {
    ANALYZERS_HOOK: "analyzer classes",
    "camsight_rules": "rule type classes",
    "camsight_sources": "source classes",
}
"""Every hook, with what it returns (for the message when a plugin returns something else)."""


@dataclass(frozen=True)
class TypeInfo:
    """One rule type or source scheme as a plugin declares it."""

    name: str
    plugin: str
    cls: type[Any]


class PluginManager:
    """Finds plugins and the analyzers, rule types and source schemes they provide.

    ``disabled`` names plugins (entry-point names or explicit module
    names) that must not be loaded at all. ``disable_hint`` says how the
    caller's user disables a plugin (``{plugin}`` stands for its name): a
    configuration's ``disabled_plugins`` by default, ``--disable`` on the
    commands that take it; clash messages quote it.
    """

    def __init__(self, disabled: Iterable[str] = (), disable_hint: str = DISABLE_IN_CONFIG) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._disabled = set(disabled)
        self._disable_hint = disable_hint
        self._versions: dict[str, str] = {}
        self._returned: dict[tuple[str, str], list[Any]] = {}
        """(hook, plugin) -> what its implementation returned, checked: each is called once."""
        self.builtin: set[str] = set()
        """Names of camsight's own plugins (its distribution's entry points, its rule types and sources)."""
        self.errors: dict[str, str] = {}
        """Plugin name -> why it could not be used."""
        self.unavailable: dict[str, str] = {}
        """Plugin name -> what it lacks and the command that installs it (its extra is missing)."""
        self.type_errors: dict[str, str] = {}
        """Plugin name -> why a rule type or source scheme it declares cannot be used."""

    def load_entry_points(self) -> None:
        """Import every plugin registered in the ``camsight`` entry-point group.

        An entry point's name is its plugin's name, so two distributions registering one
        name cannot both be loaded: camsight's own plugin (or the reserved name of its
        rule types and sources) is kept and the other is refused in :attr:`errors`,
        naming both distributions; two third-party ones are both refused, as entry-point
        order is the installer's (decision 0025 chose the same for analyzer names).
        """
        by_name: dict[str, list[importlib.metadata.EntryPoint]] = {}
        for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
            by_name.setdefault(ep.name, []).append(ep)
        for name, eps in by_name.items():
            if name in self._disabled or self._pm.has_plugin(name):
                continue
            chosen = self._unique(name, eps)
            if chosen is not None:
                self._load(chosen)

    def _unique(
        self, name: str, eps: list[importlib.metadata.EntryPoint]
    ) -> importlib.metadata.EntryPoint | None:
        """The one entry point to load of those registered as ``name``, the others refused."""
        own = [ep for ep in eps if _distribution(ep) == OWN_DISTRIBUTION and name not in RESERVED]
        if own or name in RESERVED:
            for ep in eps:
                if ep not in own:
                    dist = _distribution(ep)
                    self._fail(
                        f"{name} ({dist})",
                        f"entry point {name!r} of distribution {dist!r} is the name of camsight's own "
                        f"plugin {name!r} (distribution {OWN_DISTRIBUTION!r}), which is loaded instead: "
                        "rename the entry point (names in the camsight entry-point group must be unique)",
                    )
            return own[0] if own else None
        if len(eps) > 1:
            both = " and ".join(f"distribution {d!r}" for d in sorted(_distribution(ep) for ep in eps))
            self._fail(
                name,
                f"entry point {name!r} is registered by both {both}, so neither is loaded: names in "
                "the camsight entry-point group must be unique; uninstall one, or rename its entry point",
            )
            return None
        return eps[0]

    def _load(self, ep: importlib.metadata.EntryPoint) -> None:
        """Import and register one entry point's plugin, unless its extra is missing or it fails."""
        lacking = missing_extra(ep)
        if lacking:
            self.unavailable[ep.name] = lacking
            log.info("plugin %s is unavailable: %s", ep.name, lacking)
            return
        try:
            module = ep.load()
        except Exception as exc:
            self._fail(ep.name, f"cannot import {ep.value}: {error_line(exc)}")
            return
        version = ep.dist.version if ep.dist is not None else _module_version(module)
        self.add(module, name=ep.name, version=version)
        if _distribution(ep) == OWN_DISTRIBUTION:
            self.builtin.add(ep.name)

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
        if name in RESERVED:
            self.builtin.add(name)

    def plugins(self) -> list[PluginInfo]:
        """Every usable plugin with what it declares, sorted by name (the broken ones are in
        :attr:`errors`)."""
        infos: dict[str, PluginInfo] = {}
        for plugin_name, plugin in self._pm.list_name_plugin():
            if plugin is None:  # blocked
                continue
            info = PluginInfo(
                plugin_name, getattr(plugin, "__name__", type(plugin).__name__), self._versions[plugin_name]
            )
            infos[plugin_name] = info
        for plugin_name, analyzers in self._declarations(ANALYZERS_HOOK).items():
            infos[plugin_name].analyzers = analyzers
        for rule in self.rule_types().values():
            infos[rule.plugin].rules.append(rule.name)
        for source in self.source_types().values():
            infos[source.plugin].sources.append(source.name)
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

    def clash_message(self, name: str) -> str:
        """One line saying which plugins declare analyzer ``name`` and how to settle it.

        When camsight's own plugin is one of them, the advice is about the others (rename
        the analyzer there, or disable them): disabling camsight's plugin would also lose
        its other analyzers (``opencv`` has ``hog`` and ``flow_activity`` beside ``motion``).
        """
        plugins = self.clashes()[name]
        own = [p for p in plugins if p in self.builtin]
        named = " and ".join(f"camsight's own plugin {p!r}" if p in own else f"plugin {p!r}" for p in plugins)
        said = f"analyzer {name!r} is provided by {'both ' if len(plugins) == 2 else ''}{named}"
        others = [p for p in plugins if p not in own]
        if own and others:
            hints = ", ".join(self._disable_hint.format(plugin=p) for p in others)
            return (
                f"{said}: rename it in {', '.join(repr(p) for p in others)}, "
                f"or disable {'that plugin' if len(others) == 1 else 'those plugins'} ({hints})"
            )
        hints = " or ".join(self._disable_hint.format(plugin=p) for p in plugins)
        return f"{said}: disable all but one of them ({hints})"

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
        """Name -> declaration. A declaration that is no class, or whose name is not a name,
        and a name two plugins declare, are recorded in :attr:`type_errors` and left out; a
        name camsight's own plugin declares stays its own."""
        found: dict[str, list[TypeInfo]] = {}
        for plugin, classes in self._declarations(hook).items():
            for cls in classes:
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

    def _declarations(self, hook: str) -> dict[str, list[Any]]:
        """Plugin name -> what its ``hook`` declares (for the analyzers hook, described), for
        every usable plugin implementing it.

        Every hook of every plugin is called on its own, and once: pluggy's joint hook call
        would fail every plugin's declarations for one that raises, and calling again on
        each question would log a broken plugin's error each time. A plugin whose hook
        raises or returns something else than a list of classes is broken (in
        :attr:`errors`) as a whole, whichever hook it was.
        """
        for name in HOOKS:
            for impl in getattr(self._pm.hook, name).get_hookimpls():
                if (name, impl.plugin_name) not in self._returned:
                    self._returned[name, impl.plugin_name] = self._call(name, impl.plugin_name, impl.function)
        return {
            plugin: declared
            for (name, plugin), declared in self._returned.items()
            if name == hook and plugin not in self.errors
        }

    def _call(self, hook: str, plugin: str, function: Callable[[], object]) -> list[Any]:
        """What one plugin's ``hook`` returns, checked; [] with the plugin broken when it raises
        or returns anything else than a list of classes (None, pluggy's "nothing", is [])."""
        try:
            returned = function()
            if returned is not None and not is_sequence(returned):
                raise AnalyzerError(
                    f"{hook}() must return a list of {HOOKS[hook]}, got {described(returned)}"
                )
            classes = list(cast(Iterable[Any], returned or ()))
            return [_describe(cls, plugin) for cls in classes] if hook == ANALYZERS_HOOK else classes
        except AnalyzerError as exc:
            self._fail(plugin, str(exc))
        except Exception as exc:
            self._fail(plugin, f"{hook}() failed: {error_line(exc)}")
        return []

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
        if name in self.clashes():
            raise AnalyzerError(self.clash_message(name))
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
        """Record ``plugin`` as broken, and log it: once, with its first reason."""
        if plugin not in self.errors:
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
        raise AnalyzerError(
            f"{ANALYZERS_HOOK}() returned {cls!r}, which is not a FrameAnalyzer or ClipAnalyzer subclass"
        )
    for attr in ("name", "kind"):
        if not isinstance(getattr(cls, attr, None), str):
            raise AnalyzerError(f"analyzer class {cls.__name__} does not declare {attr!r}")
    validate_id(cls.name, "analyzer name")
    return AnalyzerInfo(cls.name, cls.kind, cls.version, cls.clip, plugin, cls)


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


def _distribution(ep: importlib.metadata.EntryPoint) -> str:
    """The (normalised) name of the distribution that registers ``ep``."""
    name = ep.dist.name if ep.dist is not None else "?"
    return name.lower().replace("_", "-").replace(".", "-")


def error_line(exc: BaseException) -> str:
    """``Type: message`` on one line: how a plugin's exception is logged and printed (a line
    break in its message would split a log record, and a command's error is one line)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def failed_to_load(name: str, exc: BaseException) -> str:
    """Why analyzer ``name`` is not running: what its ``load()`` raised, the same line in the
    host (a service's readiness) and in ``camsight analyze``."""
    return f"analyzer {name} failed to load: {error_line(exc)}"


def default_manager(
    disabled: Iterable[str] = (),
    extra: Iterable[str] = (),
    *,
    must_import: bool = False,
    disable_hint: str = DISABLE_IN_CONFIG,
) -> PluginManager:
    """Entry-point plugins plus ``extra`` modules imported by dotted name.

    An ``extra`` module that cannot be imported is a broken plugin like any other (a
    service keeps its other analyzers); with ``must_import`` (a module a user named on
    the command line) it raises :class:`AnalyzerError` instead, with the reason.
    """
    manager = PluginManager(disabled, disable_hint)
    manager.load_entry_points()
    for module_name in extra:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            reason = f"cannot import {module_name}: {error_line(exc)}"
            if must_import:
                raise AnalyzerError(reason) from None
            manager._fail(module_name, reason)
            continue
        manager.add(module, name=module_name)
    return manager
