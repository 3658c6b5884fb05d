"""``camsight demo``: the pipeline on the sample videos, then an HTML report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from camsight.cli import app
from camsight.cli.common import ConfigOption, fail, plain_console, settings_or_exit
from camsight.cli.run import (
    annotator,
    console_keeper,
    output_dir,
    print_report,
    print_summary,
    reporter,
    run_or_exit,
    run_pipeline,
    with_console,
)
from camsight.config import LogSettings
from camsight.run import EmbeddedPipeline, PipelineSummary
from camsight.run.demo import demo_cameras, enroll_driver
from camsight.runtime import setup_logging


async def _enroll(pipeline: EmbeddedPipeline, _summary: PipelineSummary) -> None:
    identity = await enroll_driver(pipeline)
    plain_console(stderr=True).print(f"enrolled {identity.display_name!r} from carphone_distorted.mp4")


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option(help="Folder for the report, videos and data.")] = Path(
        "camsight-demo"
    ),
    config: ConfigOption = None,
    console: Annotated[
        bool, typer.Option("--console", help="After the report, serve the web console until Ctrl-C.")
    ] = False,
) -> None:
    """Run camsight on sample videos (a street, a driver) and write an HTML report."""
    settings = settings_or_exit(config)
    setup_logging(LogSettings(level="WARNING", format="text"), "demo")
    logging.getLogger("camsight").setLevel(logging.WARNING)
    try:
        cameras = demo_cameras()
    except FileNotFoundError as exc:
        fail(str(exc))
    output_dir(out, "--out")
    videos: list[Path] = []
    after = reporter(out, annotator(cameras, out, videos, option="demo"), videos)
    if console:
        settings, after = with_console(settings), console_keeper(after)
    summary = run_or_exit(
        run_pipeline(settings, cameras, out / "data", as_json=False, before=_enroll, after=after)
    )
    printer = plain_console()
    print_summary(summary, printer, cameras)
    print_report(out, printer)
