"""A broken or clashing third-party plugin is one line naming it and the problem (``camsight
plugins list`` marks it BROKEN); camsight's own plugins and every other plugin keep working.
Third-party packages are installed as a user's pip would leave them: a ``*.dist-info`` with
its entry points, found on ``sys.path``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from camsight.analyzers import (
    KIND_OBJECTS,
    AnalyzerError,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
    hookimpl,
)
from camsight.analyzers.manager import PluginManager, default_manager
from camsight.behavior.rules import checked_registry
from camsight.behavior.settings import BehaviorSettings
from camsight.cli import app
from camsight.decoder.plugins import checked_sources
from helpers import entry_point_site
from typer.testing import CliRunner

runner = CliRunner()

RAISING_HOOK = """
from camsight.analyzers import hookimpl


@hookimpl
def {hook}():
    raise RuntimeError("x")
"""

AN_ANALYZER = """
from camsight.analyzers import FrameAnalyzer, hookimpl


class Thing(FrameAnalyzer):
    name = "epclash_thing"
    kind = "objects"

    def analyze(self, images, frames):
        return [[] for _ in images]


@hookimpl
def camsight_analyzers():
    return [Thing]
"""


def test_a_raising_rules_or_sources_hook_breaks_its_plugin_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Such a hook failed pluggy's joint call, so every rule type (camsight's own included)
    was gone and ``camsight run`` stopped on a traceback whatever its config."""
    modules = {f"bad_{kind}": RAISING_HOOK.format(hook=f"camsight_{kind}") for kind in ("rules", "sources")}
    site = entry_point_site(tmp_path, "bad-hooks", {name: name for name in modules}, modules)
    monkeypatch.syspath_prepend(str(site))
    # What `camsight run` checks first; each raised "AnalyzerError: a camsight_rules hook raised ...".
    rules = checked_registry([], [], BehaviorSettings())
    sources = checked_sources([], [])
    assert {"zone_enter", "line_cross"} <= set(rules.types) and {"file", "rtsp"} <= set(sources.types)
    manager = default_manager()
    manager.rule_types()
    assert manager.errors["bad_rules"] == "camsight_rules() failed: RuntimeError: x"
    assert "motion" in manager.analyzers()
    listed = runner.invoke(app, ["plugins", "list"])
    assert listed.exit_code == 0, listed.output
    assert "  zone_enter               rule type" in listed.stdout  # not "(nothing)"
    assert "  rtsp://                  camera source" in listed.stdout
    assert "bad_rules: BROKEN: camsight_rules() failed: RuntimeError: x" in listed.stdout
    assert "bad_sources: BROKEN: camsight_sources() failed: RuntimeError: x" in listed.stdout


def test_an_entry_point_named_like_camsight_s_own_plugin_does_not_replace_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First come was first served: a package's ``opencv`` entry point, found first on the path,
    took the place of camsight's, and hog, motion and flow_activity were gone without a word."""
    site = entry_point_site(
        tmp_path, "epclash", {"opencv": "epclash", "camsight-rules": "epclash"}, {"epclash": AN_ANALYZER}
    )
    monkeypatch.syspath_prepend(str(site))
    manager = default_manager()
    assert {"hog", "motion", "flow_activity"} <= set(manager.analyzers())
    assert "epclash_thing" not in manager.analyzers()
    assert manager.errors["opencv (epclash)"] == (
        "entry point 'opencv' of distribution 'epclash' is the name of camsight's own plugin 'opencv' "
        "(distribution 'camsight'), which is loaded instead: rename the entry point (names in the "
        "camsight entry-point group must be unique)"
    )
    listed = runner.invoke(app, ["plugins", "list"])
    assert listed.exit_code == 0, listed.output
    assert "  hog " in listed.stdout and "  zone_enter " in listed.stdout
    assert "opencv (epclash): BROKEN: entry point 'opencv' of distribution 'epclash'" in listed.stdout
    assert "camsight-rules (epclash): BROKEN: entry point 'camsight-rules'" in listed.stdout


def test_two_distributions_registering_one_entry_point_name_are_both_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither wins: which one is found first is the installer's doing (as for analyzer names)."""
    for dist in ("first-dist", "second-dist"):
        site = entry_point_site(tmp_path / dist, dist, {"twin": "twin_plugin"}, {"twin_plugin": AN_ANALYZER})
        monkeypatch.syspath_prepend(str(site))
    manager = default_manager()
    assert "epclash_thing" not in manager.analyzers() and "motion" in manager.analyzers()
    assert manager.errors["twin"] == (
        "entry point 'twin' is registered by both distribution 'first-dist' and distribution "
        "'second-dist', so neither is loaded: names in the camsight entry-point group must be unique; "
        "uninstall one, or rename its entry point"
    )


class HookClass(FrameAnalyzer):
    name = "hook_class"
    kind = KIND_OBJECTS

    def analyze(self, images: list[Image], frames: list[FrameInfo]) -> list[list[Detection]]:
        return [[] for _ in images]


class ReturnsAClass:
    @hookimpl
    def camsight_analyzers(self) -> type[FrameAnalyzer]:
        return HookClass  # not [HookClass]


def test_a_hook_returning_a_class_not_a_list_is_one_clear_line_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = default_manager()
    manager.add(ReturnsAClass(), name="returns_a_class")
    with caplog.at_level(logging.ERROR, logger="camsight.analyzers.manager"):
        manager.plugins()
        manager.analyzers()
        manager.clashes()
        manager.rule_types()
        with pytest.raises(AnalyzerError, match="broken plugins: returns_a_class: camsight_analyzers"):
            manager.create("hook_class")
    reason = "camsight_analyzers() must return a list of analyzer classes, got class HookClass"
    assert manager.errors["returns_a_class"] == reason
    assert [r.getMessage() for r in caplog.records] == [f"plugin returns_a_class is unusable: {reason}"]


def twin_plugin() -> object:
    class Twin(HookClass):
        name = "twin"

    class Plugin:
        @hookimpl
        def camsight_analyzers(self) -> list[type[FrameAnalyzer]]:
            return [Twin]

    return Plugin()


def test_a_clash_between_third_party_plugins_offers_to_disable_either() -> None:
    manager = PluginManager(disable_hint="--disable {plugin}")
    manager.add(twin_plugin(), name="acme")
    manager.add(twin_plugin(), name="bolt")
    assert manager.clash_message("twin") == (
        "analyzer 'twin' is provided by both plugin 'acme' and plugin 'bolt': "
        "disable all but one of them (--disable acme or --disable bolt)"
    )
