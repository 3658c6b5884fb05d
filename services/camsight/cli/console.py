"""``camsight console --data-dir DIR``: the web console over a finished run's folder, read-only."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from camsight.cli import app
from camsight.cli.common import EXIT_USAGE, ConfigOption, fail, settings_or_exit
from camsight.cli.run import cancelled_by_signals, console_keeper, run_or_exit, with_console
from camsight.config import LogSettings, Settings
from camsight.query.settings import default_index_path
from camsight.run import EmbeddedPipeline, PipelineSummary
from camsight.runtime import setup_logging

QUERY_SERVICE = "camsight.query.service:QueryService"


async def serve(settings: Settings, data_dir: Path) -> None:
    """The folder's nats-server and a query service with a read-only console, until a signal."""
    with cancelled_by_signals() as interruption:
        interruption.pipeline = EmbeddedPipeline(
            settings, data_dir, services=[QUERY_SERVICE], nats_log=data_dir / "nats.log", keep_cameras=True
        )
        async with interruption.pipeline as pipeline:
            await console_keeper(None, read_only=True)(pipeline, PipelineSummary())


@app.command("console")
def console_command(
    data_dir: Annotated[
        Path,
        typer.Option(help="The data folder of a finished run (camsight run's --data-dir, demo's OUT/data)."),
    ],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: a free one).", min=0, max=65535)] = 8090,
    config: ConfigOption = None,
) -> None:
    """Serve the web console over a finished run's folder, read-only, until Ctrl-C."""
    index = default_index_path(data_dir)
    if not index.is_file():
        fail(f"--data-dir {data_dir}: no finished run there (expected {index})", EXIT_USAGE)
    settings = with_console(settings_or_exit(config), port=port, read_only=True)
    setup_logging(LogSettings(level="WARNING", format="text"), "console")
    logging.getLogger("camsight").setLevel(logging.WARNING)
    run_or_exit(serve(settings, data_dir))
