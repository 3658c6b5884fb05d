"""``camsight plugins list|docs``: installed plugins with their analyzers (kinds, versions),
rule types and camera sources; the settings reference of the built-in analyzers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from camsight import __version__
from camsight.analyzers.docs import render
from camsight.analyzers.manager import BUILTIN_RULES, BUILTIN_SOURCES, DISABLE_IN_CONFIG
from camsight.behavior.rules import builtin as builtin_rules
from camsight.cli import app
from camsight.cli.common import DISABLE_OPTION, EXIT_USAGE, fail, plugin_manager
from camsight.decoder import plugins as builtin_sources

plugins_app = typer.Typer(help="Analyzer plugins (the `camsight` entry-point group).", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")


@plugins_app.command("list")
def list_plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    disable: Annotated[
        list[str] | None, typer.Option("--disable", help="Do not load this plugin (repeatable).")
    ] = None,
    plugin_module: Annotated[
        list[str] | None,
        typer.Option("--plugin-module", help="Also load this plugin module (dotted name; repeatable)."),
    ] = None,
) -> None:
    """Show each plugin with its analyzers; analyzer names two plugins declare (unusable until
    one is disabled), unavailable plugins (an extra not installed) with the command that
    installs it, broken ones with the reason."""
    # A clash is settled in the configuration; --disable here shows what that would change.
    hint = f"{DISABLE_IN_CONFIG}, or {DISABLE_OPTION} to see it here"
    manager = plugin_manager(disable, plugin_module, hint)
    # camsight's own rule types and schemes, registered as the services register them: listed,
    # and a plugin claiming one of their names is shown refused.
    manager.add(builtin_rules, name=BUILTIN_RULES, version=__version__)
    manager.add(builtin_sources, name=BUILTIN_SOURCES, version=__version__)
    plugins = manager.plugins()
    clashes = manager.clashes()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "plugins": [p.as_dict() for p in plugins],
                    "clashes": clashes,
                    "unavailable": manager.unavailable,
                    "errors": manager.errors | manager.type_errors,
                },
                indent=2,
            )
        )
        return
    for plugin in plugins:
        typer.echo(f"{plugin.name} {plugin.version} ({plugin.module})")
        for a in plugin.analyzers:
            typer.echo(f"  {a.name:<24} {a.kind:<10} {a.version}{'  [clip]' if a.clip else ''}")
        for rule in plugin.rules:
            typer.echo(f"  {rule:<24} rule type")
        for scheme in plugin.sources:
            typer.echo(f"  {scheme + '://':<24} camera source")
        if not plugin.analyzers and not plugin.rules and not plugin.sources:
            typer.echo("  (nothing)")
    for name in sorted(clashes):
        typer.secho(f"CLASH: {manager.clash_message(name)}", fg=typer.colors.RED)
    for name, lacking in sorted(manager.unavailable.items()):
        typer.secho(f"{name}: unavailable: {lacking}", fg=typer.colors.YELLOW)
    for name, reason in sorted((manager.errors | manager.type_errors).items()):
        typer.secho(f"{name}: BROKEN: {reason}", fg=typer.colors.RED)


@plugins_app.command("docs")
def docs_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the page here (default: print it).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only compare with --output; exit 1 when it is stale.")
    ] = False,
) -> None:
    """The settings reference of the built-in analyzers (docs/analyzers.md), from their Config
    models; no model is loaded."""
    text = render()
    if check:
        if output is None:
            fail("--check needs --output", EXIT_USAGE)
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            fail(f"{output} is stale: run camsight plugins docs --output {output}")
        return
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
