"""The ``camsight`` command line.

Each sub-command lives in its own module of this package and registers
itself on :data:`app`; this module only assembles them.
"""

from __future__ import annotations

import typer

from camsight import __version__

app = typer.Typer(
    name="camsight",
    help="Video analytics: camera streams and video files in, searchable events out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print camsight's version."""
    typer.echo(__version__)


def _register() -> None:
    """Import every module of this package: each adds its commands to ``app``."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if module.name != "common":
            importlib.import_module(f"{__name__}.{module.name}")


_register()


def main() -> None:
    app()
