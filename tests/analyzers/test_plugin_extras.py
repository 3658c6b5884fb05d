"""A plugin whose extra is not installed: listed as unavailable with the install command,
never imported, and the other plugins still work (a core-only install starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from camsight.analyzers import AnalyzerError
from camsight.analyzers.manager import default_manager
from helpers import entry_point_site

MODULE = "camsight_needy_plugin"


def install(site: Path, requirement: str) -> None:
    """A distribution ``camsight-needy`` whose entry point ``needy`` needs extra ``needy``."""
    entry_point_site(
        site,
        "camsight-needy",
        {"needy": MODULE},
        # Importing it would fail loudly: an unavailable plugin must not be imported at all.
        {MODULE: "raise RuntimeError('imported although its extra is missing')\n"},
        f'Provides-Extra: needy\nRequires-Dist: pluggy\nRequires-Dist: {requirement}; extra == "needy"\n',
    )


@pytest.fixture
def needy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    install(tmp_path, "no-such-package-camsight-test>=1")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_plugin_without_its_extra_is_unavailable_with_the_install_command(needy: Path) -> None:
    manager = default_manager()
    assert manager.unavailable == {
        "needy": "needs no-such-package-camsight-test: pip install 'camsight-needy[needy]'"
    }
    assert MODULE not in sys.modules and "needy" not in manager.errors
    assert "motion" in manager.analyzers()  # the others still work
    with pytest.raises(AnalyzerError, match=r"unavailable plugins: needy: needs no-such-package"):
        manager.create("needy_detector")


def test_a_too_old_package_is_named_with_its_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(tmp_path, "pluggy>=999")
    monkeypatch.syspath_prepend(str(tmp_path))
    lacking = default_manager().unavailable["needy"]
    assert lacking.startswith("needs pluggy>=999 (found ") and lacking.endswith(
        "pip install 'camsight-needy[needy]'"
    )


def test_plugins_list_shows_it(needy: Path) -> None:
    env_path = f"{needy}:{':'.join(sys.path)}"
    run = [sys.executable, "-m", "camsight", "plugins", "list"]
    listed = subprocess.run(
        run, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": env_path}
    )
    as_json = subprocess.run(
        [*run, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": env_path},
    )
    assert listed.returncode == 0, listed.stderr
    assert (
        "needy: unavailable: needs no-such-package-camsight-test: pip install 'camsight-needy[needy]'"
        in listed.stdout
    )
    assert json.loads(as_json.stdout)["unavailable"] == {
        "needy": "needs no-such-package-camsight-test: pip install 'camsight-needy[needy]'"
    }
