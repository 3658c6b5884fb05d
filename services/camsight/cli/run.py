"""``camsight run``: the whole pipeline on one machine, on files or live sources."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from google.protobuf import json_format
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from camsight.behavior.rules import checked_registry
from camsight.behavior.settings import BehaviorSettings
from camsight.bus import subjects
from camsight.cameras import CameraConfig
from camsight.cli import app
from camsight.cli.common import EXIT_USAGE, ConfigOption, fail, plain_console, settings_or_exit
from camsight.config import ConfigError, LogSettings, Settings, service_section
from camsight.decoder.plugins import checked_sources
from camsight.decoder.sources import SourceKind, classify
from camsight.naming import validate_id
from camsight.natsserver import NatsServerError
from camsight.run import EmbeddedPipeline, PipelineFailed, PipelineSummary, not_run, source_cameras
from camsight.run.annotate import annotate_cameras, video_file
from camsight.run.detector import choose_detector
from camsight.run.pipeline import analyzer_counts
from camsight.run.report import write_report
from camsight.runtime import setup_logging
from camsight.v1 import camera_pb2, event_pb2


def check_source(source: str) -> None:
    """Refuse a local source that cannot be what it claims, before starting anything."""
    kind, target = classify(source)
    if kind not in (SourceKind.FILE, SourceKind.FOLDER):
        return  # streams and webcams are checked by the decoder, with retries
    path = Path(target)
    if not path.exists():
        fail(f"{source}: no such file or folder", EXIT_USAGE)
    if path.is_file() and path.stat().st_size == 0:
        fail(f"{source}: the file is empty", EXIT_USAGE)


def output_dir(path: Path, option: str) -> Path:
    """Create ``path`` if needed and prove it writable, so a bad folder fails before a long run."""
    if path.exists() and not path.is_dir():
        fail(f"{option} {path}: not a folder", EXIT_USAGE)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        fail(f"{option} {path}: cannot write there ({exc.strerror or exc})", EXIT_USAGE)
    return path


def event_row(event: event_pb2.Event) -> dict[str, object]:
    return json_format.MessageToDict(event, preserving_proto_field_name=True)


class EventPrinter:
    """Events as a readable table on a terminal, or one JSON object per line."""

    def __init__(self, as_json: bool, summary: PipelineSummary) -> None:
        self.as_json = as_json
        self.summary = summary
        self.console = plain_console()

    def __call__(self, event: event_pb2.Event) -> None:
        kind = event_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_").lower()
        if event.id not in self.summary.events:  # count each event once, whatever its updates
            self.summary.events_by_type[kind] += 1
        self.summary.events[event.id] = event  # the latest state wins
        if self.as_json:
            sys.stdout.write(json.dumps(event_row(event), sort_keys=True) + "\n")
            sys.stdout.flush()
            return
        state = event_pb2.EventState.Name(event.state).removeprefix("EVENT_STATE_").lower()
        when = event.start_time.ToDatetime().strftime("%H:%M:%S.%f")[:-3]
        who = event.identity_name or event.label or event.attributes.get("state", "")
        where = event.zone_id or event.line_id or event.rule_id
        track = f"#{event.track_id}" if event.track_id else ""
        self.console.print(
            f"{when}  {event.camera_id:<12} {kind:<16} {state:<8} {who:<12} {track:<6} {where}"
            f"  {event.explanation.summary}"
        )


def warn_not_run(cameras: list[CameraConfig]) -> None:
    """Name each configured camera that this run leaves out, so none is skipped silently."""
    stderr = plain_console(stderr=True)
    for camera in cameras:
        stderr.print(
            f"camera {camera.id} ({camera.redacted_source}) is configured but not run: "
            "name its source, or run --config alone to run every configured camera"
        )


def print_summary(summary: PipelineSummary, console: Console, cameras: list[CameraConfig]) -> None:
    data = summary.as_dict()
    table = Table(title="camsight run: summary", show_header=False)
    table.add_row("time", f"{data['seconds']} s")
    table.add_row("frames decoded", str(data["frames_decoded"]))
    table.add_row("frames dropped", str(data["frames_dropped"]))
    table.add_row("throughput", f"{data['fps']} frames/s")
    table.add_row("detector", summary.detector)
    for camera in cameras:
        rules = ", ".join(f"{r.id} ({r.type_name})" for r in camera.rules) or "none"
        table.add_row(f"rules {camera.id}", rules)
    for analyzer, outcomes in sorted(summary.analyzer_frames.items()):
        table.add_row(f"analyzer {analyzer}", ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    for kind, count in data["events_by_type"].items():
        table.add_row(f"events: {kind}", str(count))
    for camera, error in data["errors"].items():
        table.add_row(f"error: {camera}", error)
    console.print(table)
    if summary.detector_fallback:  # one whole line (soft_wrap), the command to copy at its end
        console.print(f"COCO detector not used: {summary.detector_fallback}")


T = TypeVar("T")
PipelineHook = Callable[[EmbeddedPipeline, PipelineSummary], Awaitable[None]]
TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
EXIT_INTERRUPTED = 130


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal; ``abandoned`` names what it stopped without (an analyzer
    call that did not return in its grace period), one line each."""

    def __init__(self, abandoned: list[str]) -> None:
        super().__init__()
        self.abandoned = abandoned


async def run_pipeline(
    settings: Settings,
    cameras: list[CameraConfig],
    data_dir: Path,
    as_json: bool,
    before: PipelineHook | None = None,
    after: PipelineHook | None = None,
) -> PipelineSummary:
    """Run ``cameras`` through the embedded pipeline until they ended and it drained.

    ``before`` runs once every service is ready (e.g. enroll faces), ``after``
    once everything drained, while the pipeline still runs (e.g. read what
    it produced for a report). A signal stops it (:func:`cancelled_by_signals`) and
    raises :class:`Interrupted`.
    """
    with cancelled_by_signals() as interruption:
        summary = PipelineSummary()
        # Before the progress bars: a first run may download the COCO detector's weights (its own bar).
        choice = await asyncio.to_thread(choose_detector, settings)
        summary.detector, summary.detector_fallback = choice.detector, choice.fallback
        interruption.pipeline = EmbeddedPipeline(choice.settings, data_dir, nats_log=data_dir / "nats.log")
        interruption.pipeline.check()  # a configuration mistake is one line, before the progress bars
        await _run_pipeline(interruption.pipeline, summary, cameras, as_json, before, after, interruption)
        return summary


@dataclass
class Interruption:
    """The stop signals a command received, the pipeline they stop, and what a second one
    still does before the process ends at once."""

    signals: list[signal.Signals] = field(default_factory=list)
    pipeline: EmbeddedPipeline | None = None
    """Once set: a second signal stops its nats-server, and :class:`Interrupted` names what it
    stopped without."""
    before_exit: list[Callable[[], None]] = field(default_factory=list)
    """Called in order by a second signal, after the nats-server stopped (put the terminal back)."""

    def exit_now(self) -> NoReturn:
        """End the process at once (exit 130): what is still running (an analyzer call that
        never returns, services draining) is not waited for."""
        steps = [self.pipeline.abort] if self.pipeline is not None else []
        for step in [*steps, *self.before_exit]:
            with contextlib.suppress(Exception):
                step()
        typer.secho("camsight: interrupted again: stopped at once", err=True, fg=typer.colors.RED)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def cancelled_by_signals() -> Iterator[Interruption]:
    """Ctrl-C (SIGINT), SIGTERM and SIGHUP cancel the running task, so the embedded pipeline
    unwinds: the analyzers get their grace period (``stop_timeout_s``), then nats-server
    stops with its folder, and :class:`Interrupted` is raised. A second one while it unwinds
    ends the process at once (:meth:`Interruption.exit_now`). An ignored SIGINT (a job
    started in the background of a non-interactive shell) stays ignored, as Python leaves it."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None, "called from a task"
    interruption = Interruption()
    handled = [*TERMINATING_SIGNALS]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        handled.append(signal.SIGINT)  # in place of asyncio's own, which knows no second signal

    def on_signal(sig: signal.Signals) -> None:
        interruption.signals.append(sig)
        if len(interruption.signals) > 1:
            interruption.exit_now()
        main.cancel()

    for sig in handled:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield interruption
    except asyncio.CancelledError:
        if interruption.signals:
            pipeline = interruption.pipeline
            raise Interrupted(pipeline.abandoned() if pipeline is not None else []) from None
        raise
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def _run_pipeline(
    pipeline: EmbeddedPipeline,
    summary: PipelineSummary,
    cameras: list[CameraConfig],
    as_json: bool,
    before: PipelineHook | None,
    after: PipelineHook | None,
    interruption: Interruption,
) -> None:
    stderr = plain_console(stderr=True)
    printer = EventPrinter(as_json, summary)
    started = asyncio.get_running_loop().time()
    with Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%  {task.fields[state]}"),
        TimeElapsedColumn(),
        console=stderr,
        transient=False,
    ) as progress:
        interruption.before_exit.append(progress.stop)  # the terminal's cursor back
        bars = {c.id: progress.add_task(c.id, total=1.0, state="starting") for c in cameras}

        def on_status(status: camera_pb2.CameraStatus) -> None:
            state = camera_pb2.CameraState.Name(status.state).removeprefix("CAMERA_STATE_").lower()
            done = 1.0 if status.state == camera_pb2.CAMERA_STATE_ENDED else status.progress
            progress.update(bars[status.camera_id], completed=done, state=state)

        async with pipeline:
            # Where `camsight events ... --server` and other clients reach this run's API.
            stderr.print(f"gRPC API: {pipeline.grpc_target()}")
            if before is not None:
                await before(pipeline, summary)
            async with pipeline.watch_events(printer):
                await pipeline.add_cameras(cameras)
                summary.cameras = await pipeline.wait_finished([c.id for c in cameras], on_status)
            summary.seconds = asyncio.get_running_loop().time() - started
            summary.analyzer_frames = analyzer_counts()
            if after is not None:
                await after(pipeline, summary)


def annotator(
    cameras: list[CameraConfig], out: Path, written: list[Path], option: str = "--annotate"
) -> PipelineHook:
    """``--annotate``: after the run, one annotated video per camera that reads a video file.

    Call it just before the run. Live sources are named on stderr and skipped now; messages
    start with ``option`` (the demo annotates without the option).
    """
    for camera in cameras:
        if video_file(camera) is None:
            kind, _ = classify(camera.source)
            plain_console(stderr=True).print(
                f"{option}: camera {camera.id} is not annotated: its source "
                f"({kind.value} {camera.redacted_source}) cannot be read a second time; only video files can"
            )

    since_ns = time.time_ns()

    async def hook(pipeline: EmbeddedPipeline, summary: PipelineSummary) -> None:
        try:
            written.extend(await annotate_cameras(pipeline, summary, cameras, out, since_ns))
        except (OSError, ValueError) as exc:  # the events are indexed already; only a video is missing
            fail(f"{option}: {exc}")

    return hook


def reporter(out: Path, then: PipelineHook | None, videos: list[Path]) -> PipelineHook:
    """``--report`` (and the demo): after ``then`` (e.g. the annotator filling ``videos``),
    the static HTML report of this run's events, their snapshots from the object store and
    the videos written inside ``out`` (the page refers to them by relative path)."""

    async def hook(pipeline: EmbeddedPipeline, summary: PipelineSummary) -> None:
        if then is not None:
            await then(pipeline, summary)
        store = await pipeline.bus.object_store(subjects.SNAPSHOTS_STORE)
        snapshots: dict[str, bytes] = {}
        for event in summary.events.values():
            for name in (event.snapshot_id, event.explain_snapshot_id):
                if name and name not in snapshots:
                    found = await store.get(name)
                    if found.data:
                        snapshots[name] = found.data
        await asyncio.to_thread(_write_report, out, summary, snapshots, videos)

    return hook


def _write_report(
    out: Path, summary: PipelineSummary, snapshots: dict[str, bytes], videos: list[Path]
) -> None:
    inside = [v for v in videos if v.resolve().is_relative_to(out.resolve())]
    write_report(out, list(summary.events.values()), snapshots, inside, summary.as_dict())


def print_report(out: Path, console: Console) -> None:
    # soft_wrap: a long path stays on one line, whole, for copying or scripts.
    console.print(f"report: {(out / 'index.html').resolve()} (open it in a browser)")


def run_or_exit(main: Coroutine[Any, Any, T], interrupted: str = "interrupted") -> T:
    """``asyncio.run(main)`` of an embedded pipeline, its failures as one line and an exit code."""
    try:
        return asyncio.run(main)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except NatsServerError as exc:
        fail(f"embedded NATS: {exc}")
    except PipelineFailed as exc:
        fail(str(exc), EXIT_USAGE)
    except Interrupted as exc:
        fail("; ".join([*exc.abandoned, interrupted]), EXIT_INTERRUPTED)
    except KeyboardInterrupt:  # before the signals were ours (asyncio's own Ctrl-C)
        fail(interrupted, EXIT_INTERRUPTED)


def with_console(settings: Settings, **console: object) -> Settings:
    """``--console``: the query service also serves the console, on loopback and a free port
    unless the config's ``services.query.console`` (or ``console``) names others."""
    query = dict(settings.services.get("query", {}))
    query["console"] = {
        "host": "127.0.0.1",
        "port": 0,
        **query.get("console", {}),
        **console,
        "enabled": True,
    }
    return settings.model_copy(update={"services": {**settings.services, "query": query}})


def console_keeper(then: PipelineHook | None, read_only: bool = False) -> PipelineHook:
    """``--console``: once the files ended (and ``then`` ran), print the console's address and
    keep serving it until Ctrl-C, SIGTERM or SIGHUP, which then end the run normally."""

    async def hook(pipeline: EmbeddedPipeline, summary: PipelineSummary) -> None:
        if then is not None:
            await then(pipeline, summary)
        url = pipeline.console_url()
        mode = "read-only; " if read_only else ""
        plain_console(stderr=True).print(f"console: {url} ({mode}Ctrl-C to stop)")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()  # the stop the user asked for: the run ends as if the console were closed

    return hook


def parse_enroll(item: str) -> tuple[str, bytes]:
    """``driver=face.jpg`` -> ("driver", image bytes); exits 2 on a bad value."""
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        fail(f"--enroll {item!r}: expected NAME=IMAGE", EXIT_USAGE)
    try:
        validate_id(name, "identity name")
        return name, Path(path).read_bytes()
    except (ValueError, OSError) as exc:
        fail(f"--enroll {item!r}: {exc}", EXIT_USAGE)


def enroll_faces(faces: list[tuple[str, bytes]]) -> PipelineHook:
    async def hook(pipeline: EmbeddedPipeline, _summary: PipelineSummary) -> None:
        for name, image in faces:
            try:
                await pipeline.enroll_face(name, name, image)
            except ValueError as exc:  # refused: no face, several faces, not an image
                fail(f"--enroll {name}: {exc}", EXIT_USAGE)

    return hook


@app.command("run")
def run_command(
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            help="Video files, image folders, stream URLs or webcams; none: every camera of --config."
        ),
    ] = None,
    config: ConfigOption = None,
    data_dir: Annotated[Path, typer.Option(help="Event index, snapshots and NATS data.")] = Path(
        "camsight-data"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per event on stdout.")] = False,
    realtime: Annotated[
        bool, typer.Option(help="Play files at their own rate, dropping what analyzers cannot take.")
    ] = False,
    enroll: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=IMAGE: enroll a face before the run (kept in the data folder).", metavar="NAME=IMAGE"
        ),
    ] = None,
    annotate: Annotated[
        Path | None,
        typer.Option(
            help="After the run, write each video file with what camsight saw drawn on it (H.264 mp4).",
            metavar="DIR",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="After the run, write an HTML report of its events there (with the videos "
            "of --annotate when it names the same folder).",
            metavar="DIR",
        ),
    ] = None,
    console: Annotated[
        bool, typer.Option("--console", help="After the run, serve the web console until Ctrl-C.")
    ] = False,
) -> None:
    """Start NATS and every service, run the sources, print events, exit when done.

    Exit status: 0; 1 when a camera failed or an analyzer failed on every frame it was
    given; 2 for a usage or configuration error; 130 when stopped by Ctrl-C, SIGTERM or
    SIGHUP (analyzers get services.<service>.stop_timeout_s to return, then the run stops
    without them; a second signal stops it at once).
    """
    sources = sources or []
    for source in sources:
        check_source(source)
    faces = [parse_enroll(item) for item in enroll or []]
    if annotate is not None:
        output_dir(annotate, "--annotate")
    if report is not None:
        output_dir(report, "--report")
    settings = settings_or_exit(config)
    setup_logging(LogSettings(level="WARNING", format="text"), "run")
    logging.getLogger("camsight").setLevel(logging.WARNING)
    try:
        cameras = source_cameras(sources, realtime=realtime, base=settings.cameras)
    except ValueError as exc:
        fail(str(exc).splitlines()[0], EXIT_USAGE)
    if not cameras:
        fail("nothing to run: name a source, or a --config whose cameras: list is not empty", EXIT_USAGE)
    try:  # before anything starts: a scheme or rule no plugin provides is one line and exit 2
        checked_sources(settings.disabled_plugins, cameras)
        checked_registry(
            settings.disabled_plugins, cameras, service_section(settings, "behavior", BehaviorSettings)
        )
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    warn_not_run(not_run(settings.cameras, cameras))
    videos: list[Path] = []
    after = annotator(cameras, annotate, videos) if annotate is not None else None
    if report is not None:
        after = reporter(report, after, videos)
    if console:
        settings, after = with_console(settings), console_keeper(after)
    summary = run_or_exit(
        run_pipeline(
            settings, cameras, data_dir, as_json, before=enroll_faces(faces) if faces else None, after=after
        ),
        interrupted="interrupted; the data folder is consistent",
    )
    out = plain_console(stderr=as_json)
    print_summary(summary, out, cameras)
    for video in videos:
        out.print(f"annotated video: {video}")
    if report is not None:
        print_report(report, out)
    failures = [f"{cid}: {err}" for cid, err in summary.errors.items()] + summary.failed_analyzers
    if failures:
        fail("; ".join(failures))
