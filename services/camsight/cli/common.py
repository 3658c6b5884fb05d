"""Helpers shared by the CLI commands: loading config, failing cleanly, printing data."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from camsight.analyzers import AnalyzerError
from camsight.analyzers.manager import PluginManager, default_manager
from camsight.config import ConfigError, Settings, load_settings

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config file (CAMSIGHT_* variables override it).",
        envvar="CAMSIGHT_CONFIG",
    ),
]

EXIT_USAGE = 2
DISABLE_OPTION = "--disable {plugin}"
"""How a command with ``--disable`` tells its user to disable a plugin (clash messages)."""


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line (or few-line) error on stderr and exit; no traceback."""
    typer.secho(f"camsight: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def settings_or_exit(path: Path | None, **overrides: object) -> Settings:
    """Load settings; a bad config exits 2 naming the field and value."""
    try:
        return load_settings(path, **overrides)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def plain_console(stderr: bool = False) -> Console:
    """A console that prints text as it is. What the CLI prints is data (camera sources, file
    names, event summaries, errors, commands such as ``pip install 'camsight[torch]'``), whose
    brackets rich's markup would eat, or fail on (``[/x]`` raises a MarkupError)."""
    return Console(stderr=stderr, markup=False, highlight=False, soft_wrap=True)


def plugin_manager(
    disable: Sequence[str] | None, plugin_modules: Sequence[str] | None, disable_hint: str = DISABLE_OPTION
) -> PluginManager:
    """The plugins of a command with ``--disable`` and ``--plugin-module``.

    A ``--plugin-module`` is importable from the current folder, as with ``python -m``
    (the ``camsight`` script's own folder is what Python puts on ``sys.path``), so a plugin
    author can try a module that is not installed from where it lies; one that cannot be
    imported all the same stops the command with its reason (exit 2): the user asked for it.
    """
    if plugin_modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return default_manager(
            disable or (), plugin_modules or (), must_import=True, disable_hint=disable_hint
        )
    except AnalyzerError as exc:
        fail(f"--plugin-module: {exc}", EXIT_USAGE)
