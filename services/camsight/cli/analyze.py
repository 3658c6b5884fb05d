"""``camsight analyze --plugin NAME SOURCE``: run one analyzer on a video or image folder, no NATS.

Prints one line per detection (or JSON lines), or writes an annotated
video with ``--output``; ``--explain DIR`` also writes every frame with the
analyzer's saliency map over it (analyzers with ``explain()``, decision 0037);
then a summary line on stderr, also when nothing was found. A result out
of the plugin contract is not shown, is counted in the summary, and makes
the exit status 1 (the host would refuse it). Handy for plugin authors and
for checking a model on footage before deploying it.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import cv2
import typer
import yaml

from camsight.analyzers import (
    Analyzer,
    AnalyzerError,
    Detection,
    FrameInfo,
    Image,
    ResultError,
    detections_problem,
)
from camsight.analyzers.explain import Explainer, overlay
from camsight.analyzers.manager import error_line, failed_to_load
from camsight.analyzers.testing import read_source, run_on_frames
from camsight.cli import app
from camsight.cli.common import EXIT_USAGE, fail, plugin_manager


@app.command("analyze")
def analyze_command(
    source: Annotated[Path, typer.Argument(help="A video file or a folder of images.")],
    plugin: Annotated[
        str, typer.Option("--plugin", "-p", help="Analyzer name (see `camsight plugins list`).")
    ],
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Analyzer config as key=value (YAML value).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write an annotated video here instead of printing.")
    ] = None,
    explain: Annotated[
        Path | None,
        typer.Option(
            help="Also write each frame with where the analyzer looked (saliency heat map) into this folder.",
            metavar="DIR",
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Analyse at most this many frames.")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Frames per analyzer call.")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    plugin_module: Annotated[
        list[str] | None,
        typer.Option("--plugin-module", help="Also load this plugin module (dotted name; repeatable)."),
    ] = None,
    disable: Annotated[
        list[str] | None, typer.Option("--disable", help="Do not load this plugin (repeatable).")
    ] = None,
) -> None:
    """Run one analyzer over SOURCE in-process and print what it finds.

    Exit status: 0; 1 when the analyzer fails to load, raises, or returns results out of
    the plugin contract; 2 for a usage error (an unknown analyzer, a bad option or source).
    """
    config = _parse_options(option or [])
    manager = plugin_manager(disable, plugin_module)
    try:
        analyzer = manager.create(plugin, config, device=device)
    except AnalyzerError as exc:
        fail(str(exc), EXIT_USAGE)
    try:  # before the analyzer loads (seconds, for a model): a source that cannot be read is a usage error
        frames = read_source(source, limit)
    except (OSError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)
    if explain is not None:
        _explain_dir(analyzer, plugin, explain)
    with plugin_errors(plugin):
        try:
            analyzer.load()
        except Exception as exc:
            fail(failed_to_load(plugin, exc))
        try:
            summary = _run(analyzer, _readable(frames), batch, output, explain, as_json)
        finally:
            analyzer.close()
    # On stderr: stdout stays one detection per line (or pure JSON lines) for pipes.
    wrote = [str(output)] if output is not None else []
    wrote += [f"{summary.explained} overlays to {explain}"] if explain is not None else []
    typer.echo(summary.line(plugin) + "".join(f"; wrote {w}" for w in wrote), err=True)
    if summary.invalid:
        raise typer.Exit(1)


@contextlib.contextmanager
def plugin_errors(plugin: str) -> Iterator[None]:
    """What the plugin's code raises inside is one line naming it, exit 1, as the host logs it:
    a result of the wrong shape in the host's words, anything else as ``analyzer NAME raised
    TYPE: message``. The command's own exits pass."""
    try:
        yield
    except typer.Exit:
        raise
    except ResultError as exc:
        fail(f"invalid result: {exc}")
    except Exception as exc:
        fail(f"analyzer {plugin} raised {error_line(exc)}")


def _readable(frames: Iterable[tuple[Image, FrameInfo]]) -> Iterator[tuple[Image, FrameInfo]]:
    """``frames``, a picture that cannot be read (a folder's broken image) a usage error, not
    the plugin's: the source is the user's."""
    try:
        yield from frames
    except (OSError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)


def _run(
    analyzer: Analyzer,
    frames: Iterable[tuple[Image, FrameInfo]],
    batch: int,
    output: Path | None,
    explain: Path | None,
    as_json: bool,
) -> Summary:
    """The loaded analyzer over ``frames``: detections printed, or drawn into ``output``, and
    saliency overlays written into ``explain``."""
    writer: cv2.VideoWriter | None = None
    summary = Summary()
    try:
        for info, image, found in run_on_frames(analyzer, frames, batch):
            detections = summary.add(info, found)
            if explain is not None:
                assert isinstance(analyzer, Explainer)
                try:
                    [saliency] = analyzer.explain([image])
                except AnalyzerError as exc:  # cannot explain as configured: the host's not-ready reason
                    fail(f"--explain: {exc}", EXIT_USAGE)
                _write(explain / f"{info.seq:06d}.jpg", annotate(overlay(image, saliency), detections))
                summary.explained += 1
            if output is not None:
                writer = writer or _writer(output, info)
                writer.write(annotate(image, detections))
            else:
                for det in detections:
                    typer.echo(_line(info, det, as_json))
    finally:
        if writer is not None:
            writer.release()
    return summary


class Summary:
    """What a run found: frames, detections per label, results out of contract."""

    def __init__(self) -> None:
        self.frames = 0
        self.labels: Counter[str] = Counter()
        self.invalid = 0
        self.first_problem = ""
        self.explained = 0

    def add(self, info: FrameInfo, found: list[Detection]) -> list[Detection]:
        """Count one frame's detections; returns those that keep the contract (as the host keeps)."""
        self.frames += 1
        problem = detections_problem(found)
        if problem is not None:
            self.invalid += 1
            self.first_problem = self.first_problem or f"frame {info.seq}: {problem}"
            return []
        self.labels.update(d.label for d in found)
        return found

    def line(self, plugin: str) -> str:
        found = ", ".join(f"{label} {n}" for label, n in self.labels.most_common()) or "nothing"
        text = f"{plugin}: {self.frames} frames analysed, {sum(self.labels.values())} detections ({found})"
        if self.invalid:
            text += f"; {self.invalid} frames with invalid results, not shown (first: {self.first_problem})"
        return text


def _parse_options(options: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--option {item!r}: expected key=value", EXIT_USAGE)
        config[key] = yaml.safe_load(value)
    return config


def _line(info: FrameInfo, det: Detection, as_json: bool) -> str:
    if as_json:
        return json.dumps(
            {
                "seq": info.seq,
                "media_time": info.media_time,
                "label": det.label,
                "score": round(det.score, 4),
                "box": [round(v, 4) for v in det.box],
                "attributes": det.attributes,
            }
        )
    x1, y1, x2, y2 = det.box
    box = f"{x1:.3f} {y1:.3f} {x2:.3f} {y2:.3f}"
    return f"{info.seq:>6} {info.media_time:8.2f}s {det.label:<16} {det.score:.2f}  {box}"


def _explain_dir(analyzer: Analyzer, plugin: str, folder: Path) -> None:
    """Refuse, before the run, an analyzer that cannot explain or a folder that cannot be written."""
    if not isinstance(analyzer, Explainer):
        fail(f"--explain: analyzer {plugin} cannot explain its results (the torch analyzers can)", EXIT_USAGE)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--explain {folder}: cannot write there ({exc.strerror or exc})", EXIT_USAGE)


def _write(path: Path, image: Image) -> None:
    if not cv2.imwrite(str(path), image):
        fail(f"cannot write {path}")


def _writer(path: Path, info: FrameInfo) -> cv2.VideoWriter:
    fps = info.seq / info.media_time if info.media_time else 25.0
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (info.width, info.height))
    if not writer.isOpened():
        fail(f"cannot write video {path}")
    return writer


def annotate(image: Image, detections: list[Detection]) -> Image:
    """A copy of ``image`` with the boxes and labels drawn on it."""
    out = image.copy()
    height, width = out.shape[:2]
    for det in detections:
        x1, y1, x2, y2 = det.box
        p1, p2 = (round(x1 * width), round(y1 * height)), (round(x2 * width), round(y2 * height))
        cv2.rectangle(out, p1, p2, (0, 255, 0), 2)
        cv2.putText(
            out,
            f"{det.label} {det.score:.2f}",
            (p1[0], max(12, p1[1] - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 255, 0),
            1,
        )
    return out
