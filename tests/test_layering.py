"""The import-linter contracts of pyproject.toml hold (docs/architecture.md, "Layers").

Run here as well as in .ci/run so that the README's test command enforces the layering:
services never import each other, nothing below the CLI imports it, plugins import only
the plugin API.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("importlinter", reason="needs import-linter: pip install -e '.[test]'")


def contract(name: str) -> dict[str, Any]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["name"] == name)


def test_the_contracts_hold() -> None:
    # A subprocess with this checkout's services/ and plugins/ first on the path: the graph
    # is built from the modules found there, not from some other installed copy.
    paths = [str(ROOT / "services"), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(no_cache=True))"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_plugins_are_forbidden_every_module_but_the_api() -> None:
    """A forbidden contract lists what it forbids: a new camsight module must join the list."""
    modules = {f"camsight.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "services" / "camsight")])}
    forbidden = set(contract("Plugins import only the plugin API")["forbidden_modules"])
    assert forbidden == modules - {"camsight.analyzers"}
