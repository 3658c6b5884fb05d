"""Plugin discovery: the example package installed like a third party, explicit plugins, disabling."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
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
from camsight.analyzers.testing import ConformanceError, check_conformance

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "camsight-example-plugin"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pip-install the example plugin into a private target dir on sys.path, like a third party.

    The source is copied first so the build leaves nothing in the working tree;
    no network (``--no-index``) and no build isolation (setuptools is in the venv).
    """
    work = tmp_path_factory.mktemp("example")
    source = shutil.copytree(EXAMPLE, work / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = work / "site"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("--no-deps", "--no-index", "--no-build-isolation", "--target", str(target), str(source)),
        ],
        check=True,
        timeout=120,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    sys.modules.pop("camsight_example_plugin", None)


def test_example_plugin_is_discovered_through_the_entry_point_and_conforms(installed_example: Path) -> None:
    plugins = {p.name: p for p in default_manager().plugins()}
    example = plugins["example"]
    assert example.version == "0.1.0"
    assert example.module == "camsight_example_plugin"
    assert [(a.name, a.kind, a.clip) for a in example.analyzers] == [("bright_spots", "objects", False)]
    assert {"hog", "motion", "flow_activity"} <= {a.name for a in plugins["opencv"].analyzers}
    check_conformance(example.analyzers[0].cls, {"threshold": 200})


def test_disabled_plugins_are_not_loaded(installed_example: Path) -> None:
    manager = default_manager(disabled=["example", "torch"])
    names = {p.name for p in manager.plugins()}
    assert "example" not in names and "torch" not in names and "opencv" in names


class NotAnAnalyzer:
    name = "nope"


class RaisingHook:
    @hookimpl
    def camsight_analyzers(self) -> list[type]:
        raise ImportError("needs libfoo")


class WrongType:
    @hookimpl
    def camsight_analyzers(self) -> list[type]:
        return [NotAnAnalyzer]


class Dummy(FrameAnalyzer):
    name = "hog"  # clashes with the built-in
    kind = KIND_OBJECTS

    def analyze(self, images: list[Image], frames: list[FrameInfo]) -> list[list[Detection]]:
        return [[] for _ in images]


class Clashing:
    @hookimpl
    def camsight_analyzers(self) -> list[type]:
        return [Dummy]


def test_a_broken_plugin_is_reported_and_the_others_still_work() -> None:
    manager = default_manager()
    manager.add(RaisingHook(), name="raising")
    manager.add(WrongType(), name="wrong_type")
    names = {p.name for p in manager.plugins()}
    assert "opencv" in names and "raising" not in names and "wrong_type" not in names
    assert "ImportError: needs libfoo" in manager.errors["raising"]
    assert "not a FrameAnalyzer or ClipAnalyzer subclass" in manager.errors["wrong_type"]
    assert manager.create("motion").name == "motion"
    with pytest.raises(AnalyzerError, match=r"broken plugins: .*raising"):
        manager.create("missing")


def test_a_name_clash_blocks_that_name_only_with_an_error_naming_both_plugins() -> None:
    manager = default_manager()
    manager.add(Clashing(), name="clashing")
    assert manager.clashes() == {"hog": ["clashing", "opencv"]}
    assert "hog" not in manager.analyzers() and "motion" in manager.analyzers()
    with pytest.raises(
        AnalyzerError, match=r"'hog' is provided by both plugin 'clashing' and plugin 'opencv': disable one"
    ):
        manager.create("hog")
    assert manager.create("motion").name == "motion"


def test_conformance_check_catches_protocol_breaches() -> None:
    class OutOfRange(Dummy):
        name = "out_of_range"

        def analyze(self, images: list[Image], frames: list[FrameInfo]) -> list[list[Detection]]:
            return [[Detection("x", 1.5, (0, 0, 2, 1))] for _ in images]

    class WrongCount(Dummy):
        name = "wrong_count"

        def analyze(self, images: list[Image], frames: list[FrameInfo]) -> list[list[Detection]]:
            return [[]]

    with pytest.raises(ConformanceError, match="not normalised"):
        check_conformance(OutOfRange)
    with pytest.raises(ConformanceError, match="an empty batch must give"):
        check_conformance(WrongCount)


def test_explicit_plugin_module_is_registered_once() -> None:
    manager = PluginManager()
    manager.add(importlib.import_module("camsight_opencv"), name="opencv")
    with pytest.raises(AnalyzerError, match="registered twice"):
        manager.add(importlib.import_module("camsight_opencv"), name="opencv")
    assert [p.name for p in manager.plugins()] == ["opencv"]


def test_the_tutorial_shows_the_example_plugin_verbatim() -> None:
    """docs/plugins.md promises a working plugin in under 50 lines: it must be the tested one."""
    doc = (EXAMPLE.parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    shown = doc.split("```python\n", 1)[1].split("```\n", 1)[0]
    source = (EXAMPLE / "src" / "camsight_example_plugin" / "__init__.py").read_text(encoding="utf-8")
    assert shown == source
    assert len(source.splitlines()) < 50
