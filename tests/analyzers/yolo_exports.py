"""YOLO files as users make them, for the tests: ultralytics' own ONNX exports of YOLOv8n and YOLO11n
with random weights, made offline once per session (fixture ``exports``), and the real frames they
are calibrated on (fixture ``frames``). Shared by test_yolo_exports.py and test_gpu.py through
conftest.py.

ultralytics (a test-only dependency) builds the models from their YAML and exports them exactly as
``yolo export format=onnx`` does (onnxslim included), with network and auto-install switched off
and socket connections failing. Random weights give a flat 1e-4 everywhere: to get real, distinct
scores the BatchNorm statistics are calibrated on the test frames and the class logits are scaled
into about -5..3 before export.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from analyzer_helpers import Image
from camsight_torch.yolo import letterbox
from helpers import sample_video

SIZE = 320  # export size: small, so the session's exports take seconds
# ultralytics reads these at import: no network checks, no pip at export time, settings in tmp.
OFFLINE = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "false"}


@contextlib.contextmanager
def no_network(attempts: list[Any]) -> Iterator[None]:
    """Name lookups and connections fail (and are recorded) inside the block."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise socket.gaierror("network blocked by the test")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", refuse)
        patch.setattr(socket.socket, "connect", refuse)
        yield


def _carphone() -> Image:
    import cv2

    capture = cv2.VideoCapture(str(sample_video("carphone_pristine.mp4")))
    ok, image = capture.read()
    capture.release()
    assert ok
    return image


@pytest.fixture(scope="session")
def frames(bikes: list[Image]) -> list[Image]:
    """Wide (bikes, 640x272) and nearly square, upscaled (carphone, 176x144) real frames."""
    return [*bikes[:5], _carphone()]


def _seed(model: Any, frames: list[Image]) -> None:
    """Give random weights distinct scores: BatchNorm statistics of real frames, class logits in -5..3."""
    import torch

    batch = torch.from_numpy(np.stack([letterbox(image, SIZE)[0] for image in frames]))
    net = model.model
    for layer in net.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.reset_running_stats()
            layer.momentum = None  # cumulative average over the batch
    with torch.no_grad():
        net.train()
        net(batch)
        net.eval()
        classes = [branch[-1] for branch in net.model[-1].cv3]  # the last conv of each class branch
        peaks: dict[int, float] = {}
        hooks = [
            conv.register_forward_hook(lambda _m, _i, out, i=i: peaks.__setitem__(i, float(out.abs().max())))
            for i, conv in enumerate(classes)
        ]
        for conv in classes:
            conv.bias.zero_()
        net(batch)
        for hook in hooks:
            hook.remove()
        for i, conv in enumerate(classes):
            conv.weight.mul_(4.0 / peaks[i])
            conv.bias.fill_(-1.0)


@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory, frames: list[Image]) -> dict[str, Path]:
    """YOLOv8n and YOLO11n exported to ONNX once per session, with the network blocked.

    ultralytics is imported here, after the environment is set: it reads it at import.
    """
    folder = tmp_path_factory.mktemp("yolo")
    attempts: list[Any] = []
    out = {}
    with pytest.MonkeyPatch.context() as patch, no_network(attempts), contextlib.chdir(folder):
        for key, value in {**OFFLINE, "YOLO_CONFIG_DIR": str(folder / "config")}.items():
            patch.setenv(key, value)
        import torch
        from ultralytics import YOLO

        for name in ("yolov8n", "yolo11n"):
            torch.manual_seed(0)
            model = YOLO(f"{name}.yaml")
            _seed(model, frames)
            out[name] = folder / model.export(format="onnx", imgsz=SIZE)
    assert attempts == [], "exporting tried to reach the network"
    return out
