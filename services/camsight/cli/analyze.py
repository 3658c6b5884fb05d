"""``camsight analyze --plugin NAME SOURCE``: run one analyzer on a video or image folder, no NATS.

Prints one line per detection (or JSON lines), or writes an annotated
video with ``--output``. Handy for plugin authors and for checking a model
on footage before deploying it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import cv2
import typer
import yaml

from camsight.analyzers import AnalyzerError, Detection, FrameInfo, Image
from camsight.analyzers.manager import default_manager
from camsight.analyzers.testing import read_source, run_on_frames
from camsight.cli import app
from camsight.cli.common import EXIT_USAGE, fail


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
    limit: Annotated[int | None, typer.Option(help="Analyse at most this many frames.")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Frames per analyzer call.")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Run one analyzer over SOURCE in-process and print what it finds."""
    config = _parse_options(option or [])
    try:
        analyzer = default_manager().create(plugin, config, device=device)
        analyzer.load()
    except AnalyzerError as exc:
        fail(str(exc), EXIT_USAGE)
    writer: cv2.VideoWriter | None = None
    try:
        for info, image, detections in run_on_frames(analyzer, read_source(source, limit), batch):
            if output is not None:
                writer = writer or _writer(output, info)
                writer.write(annotate(image, detections))
            else:
                for det in detections:
                    typer.echo(_line(info, det, as_json))
    except (OSError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        analyzer.close()
        if writer is not None:
            writer.release()
    if output is not None:
        typer.echo(f"wrote {output}")


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
            }
        )
    x1, y1, x2, y2 = det.box
    box = f"{x1:.3f} {y1:.3f} {x2:.3f} {y2:.3f}"
    return f"{info.seq:>6} {info.media_time:8.2f}s {det.label:<16} {det.score:.2f}  {box}"


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
