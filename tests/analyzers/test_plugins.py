"""Plugin discovery: the example package installed like a third party, explicit plugins, disabling."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
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
from helpers import EXAMPLES, install_example

EXAMPLE = EXAMPLES / "camsight-example-plugin"


@contextlib.contextmanager
def installed(example: str, module: str, work: Path) -> Iterator[Path]:
    """``examples/<example>`` pip-installed into ``work`` and on sys.path while inside, like a third party."""
    target = install_example(example, work)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop(module, None)


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with installed(
        "camsight-example-plugin", "camsight_example_plugin", tmp_path_factory.mktemp("example")
    ) as target:
        yield target


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
    version = "1"

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
    with pytest.raises(AnalyzerError) as refused:
        manager.create("hog")
    assert str(refused.value) == (
        "analyzer 'hog' is provided by both plugin 'clashing' and camsight's own plugin 'opencv': "
        "rename it in 'clashing', or disable that plugin (disabled_plugins: [clashing])"
    )
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


TUTORIAL = [
    "camsight-example-plugin/src/camsight_example_plugin/__init__.py",
    "camsight-example-plugin/tests/test_bright_spots.py",
    "camsight-example-clips/src/camsight_example_clips/__init__.py",
    "camsight-example-plugin/src/camsight_example_plugin/rules.py",
]


def test_the_tutorial_shows_the_examples_verbatim() -> None:
    """docs/plugins.md walks through the example packages: each block it marks
    ``<!-- example: PATH -->`` must be that file of examples/, the tested one."""
    doc = (EXAMPLES.parent / "docs" / "plugins.md").read_text(encoding="utf-8")
    shown = re.findall(r"<!-- example: (\S+) -->\n```python\n(.*?)```\n", doc, re.S)
    assert [path for path, _ in shown] == TUTORIAL
    for path, code in shown:
        assert code == (EXAMPLES / path).read_text(encoding="utf-8"), f"docs/plugins.md shows a stale {path}"
    assert len(shown[0][1].splitlines()) < 50  # the promise of section 2


def test_the_clip_example_is_discovered_through_its_entry_point_and_conforms(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with installed("camsight-example-clips", "camsight_example_clips", tmp_path_factory.mktemp("clips")):
        (plugin,) = (p for p in default_manager().plugins() if p.name == "example_clips")
        assert [(a.name, a.kind, a.clip) for a in plugin.analyzers] == [("scene_change", "actions", True)]
        check_conformance(plugin.analyzers[0].cls)


@pytest.mark.parametrize("example", ["camsight-example-plugin", "camsight-example-clips"])
def test_the_examples_pass_their_own_tests(example: str, tmp_path: Path) -> None:
    """What a plugin author runs (``pytest examples/<example>/tests``), on the installed example."""
    site = install_example(example, tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / example / "tests")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])},
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
