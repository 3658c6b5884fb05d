"""``camsight demo``: the pipeline on the sample videos, then an HTML report."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from camsight.bus import subjects
from camsight.cameras import CameraConfig
from camsight.cli import app
from camsight.cli.common import ConfigOption, fail, settings_or_exit
from camsight.cli.run import (
    PipelineHook,
    console_keeper,
    output_dir,
    print_summary,
    run_or_exit,
    run_pipeline,
    with_console,
)
from camsight.config import LogSettings
from camsight.run import EmbeddedPipeline, PipelineSummary
from camsight.run.annotate import annotate_cameras
from camsight.run.demo import demo_cameras, enroll_driver
from camsight.run.report import write_report
from camsight.runtime import setup_logging


async def _enroll(pipeline: EmbeddedPipeline, _summary: PipelineSummary) -> None:
    identity = await enroll_driver(pipeline)
    Console(stderr=True).print(f"enrolled {identity.display_name!r} from carphone_distorted.mp4")


def _reporter(out: Path, cameras: list[CameraConfig]) -> PipelineHook:
    """The videos and the report, after the run (call it just before the run)."""
    since_ns = time.time_ns()

    async def report(pipeline: EmbeddedPipeline, summary: PipelineSummary) -> None:
        try:
            videos = await annotate_cameras(pipeline, summary, cameras, out, since_ns)
        except (OSError, ValueError) as exc:
            fail(str(exc))
        store = await pipeline.bus.object_store(subjects.SNAPSHOTS_STORE)
        snapshots: dict[str, bytes] = {}
        for event in summary.events.values():
            for name in (event.snapshot_id, event.explain_snapshot_id):
                if name and name not in snapshots:
                    found = await store.get(name)
                    if found.data:
                        snapshots[name] = found.data
        await asyncio.to_thread(
            write_report, out, list(summary.events.values()), snapshots, videos, summary.as_dict()
        )

    return report


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
    after = _reporter(out, cameras)
    if console:
        settings, after = with_console(settings), console_keeper(after)
    summary = run_or_exit(
        run_pipeline(settings, cameras, out / "data", as_json=False, before=_enroll, after=after)
    )
    printer = Console()
    print_summary(summary, printer, cameras)
    # soft_wrap: a long path stays on one line, whole, for copying or scripts.
    printer.print(f"report: {(out / 'index.html').resolve()} (open it in a browser)", soft_wrap=True)
