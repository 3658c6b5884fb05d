"""``camsight plugins list``: installed analyzer plugins, their analyzers, kinds and versions."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from camsight.analyzers.manager import default_manager
from camsight.cli import app

plugins_app = typer.Typer(help="Analyzer plugins (the `camsight` entry-point group).", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")


@plugins_app.command("list")
def list_plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show each plugin with its analyzers; unavailable ones (an extra not installed) with the
    command that installs it, broken ones with the reason."""
    manager = default_manager()
    plugins = manager.plugins()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "plugins": [p.as_dict() for p in plugins],
                    "unavailable": manager.unavailable,
                    "errors": manager.errors,
                },
                indent=2,
            )
        )
        return
    for plugin in plugins:
        typer.echo(f"{plugin.name} {plugin.version} ({plugin.module})")
        for a in plugin.analyzers:
            typer.echo(f"  {a.name:<24} {a.kind:<10} {a.version}{'  [clip]' if a.clip else ''}")
        if not plugin.analyzers:
            typer.echo("  (no analyzers)")
    for name, lacking in sorted(manager.unavailable.items()):
        typer.secho(f"{name}: unavailable: {lacking}", fg=typer.colors.YELLOW)
    for name, reason in sorted(manager.errors.items()):
        typer.secho(f"{name}: BROKEN: {reason}", fg=typer.colors.RED)
