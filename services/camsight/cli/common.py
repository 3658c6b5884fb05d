"""Helpers shared by the CLI commands: loading config, failing cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

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
