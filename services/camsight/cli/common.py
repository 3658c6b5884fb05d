"""Helpers shared by the CLI commands: loading config, failing cleanly, printing data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

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
