"""Tensor inputs (decision 0076): an analyzer declaring ``inputs = "tensor"`` gets RGB tensors
decoded where it runs, never through numpy; the others get BGR arrays; the kit checks both."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from analyzer_helpers import OnHost, Results, context, make_frame, publish_frames
from camsight.analyzers import (
    KIND_OBJECTS,
    Analyzer,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
    Picture,
    pictures,
)
from camsight.analyzers.host import AnalyzerHost, HostSettings
from camsight.analyzers.manager import instantiate
from camsight.analyzers.pictures import decode_frame, decode_tensors, picture_size
from camsight.analyzers.testing import ConformanceError, check_conformance, run_on_frames, synthetic_frames
from camsight.bus import Bus
from camsight.config import NatsSettings
from camsight.v1 import frame_pb2
from camsight_torch.detection import TorchvisionDetector
from helpers import wait_for


class Recorder(FrameAnalyzer):
    """Keeps what it was handed; finds one box over the whole picture."""

    name = "takes_numpy"
    kind = KIND_OBJECTS
    version = "1"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.seen: list[Picture] = []

    def analyze(self, images: Sequence[Picture], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        self.seen.extend(images)
        return [[Detection("thing", 0.5)] for _ in images]


class TensorRecorder(Recorder):
    name = "takes_tensors"
    inputs = "tensor"


class FlipsChannels(TensorRecorder):
    """Declares tensors but treats them as BGR arrays: a negative step torch refuses."""

    name = "flips_channels"

    def analyze(self, images: Sequence[Picture], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        return [[Detection("thing", float(img[:, :, ::-1].float().mean()) / 255)] for img in images]


class ScalesInPlace(TensorRecorder):
    """Declares tensors but normalises them in place, spoiling them for the next analyzer."""

    name = "scales_in_place"

    def analyze(self, images: Sequence[Picture], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        for img in images:
            img.mul_(2)
        return [[] for _ in images]


def no_host_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any move of a tensor to host memory or numpy while the host runs."""

    def refuse(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the host copied a picture tensor to host memory")

    monkeypatch.setattr(torch.Tensor, "cpu", refuse)
    monkeypatch.setattr(torch.Tensor, "numpy", refuse)


def no_picture_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """For real torch analyzers, whose results do come back to the host: fail when a picture (a
    ``uint8`` tensor: the host's, or a window or batch of them) goes to host memory or numpy or
    changes device, when an array is made a tensor (the analyzer was handed arrays), and on any
    OpenCV resize (the numpy path's letterbox and clip resize)."""

    def guarded(name: str) -> Any:
        original = getattr(torch.Tensor, name)

        def call(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if self.dtype == torch.uint8 and name != "to":
                raise AssertionError(f"a picture tensor went to host memory: .{name}()")
            out = original(self, *args, **kwargs)
            if self.dtype == torch.uint8 and isinstance(out, torch.Tensor) and out.device != self.device:
                raise AssertionError(f"a picture tensor moved from {self.device} to {out.device}")
            return out

        return call

    def refuse(what: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(what)

        return call

    for name in ("cpu", "numpy", "to"):
        monkeypatch.setattr(torch.Tensor, name, guarded(name))
    monkeypatch.setattr(cv2, "resize", refuse("a picture was resized with OpenCV, off the device"))
    monkeypatch.setattr(pictures, "image_to_tensor", refuse("an analyzer was handed an array, not a tensor"))


async def run_host(
    bus: Bus, nats_settings: NatsSettings, analyzers: list[Analyzer], images: list[Image], results: Results
) -> None:
    """Run a host with ``analyzers`` over ``images`` (JPEG frames of one camera) until every result is in."""
    host = AnalyzerHost(context(bus, nats_settings, {}), analyzers, "detector", HostSettings())
    await host.load()
    assert host.load_errors == {}
    await publish_frames(bus, "cam", images)
    task = asyncio.create_task(host.run())
    expected = len(analyzers) * len(images)
    await wait_for(lambda: len(results.items) == expected, 120, "every analyzer's results")
    await host.stop()
    await task
    await host.close()


def decoded_elsewhere(frames: list[frame_pb2.Frame], device: str) -> list[Picture]:
    """The reference pictures of ``frames``: on the CPU, OpenCV's BGR arrays (the numpy path, the same
    pixels as libjpeg's tensors); on a GPU, nvJPEG's tensors decoded outside the host (they differ
    from OpenCV's by rounding, test_gpu.py, which a random-weights model amplifies)."""
    return [decode_frame(f) for f in frames] if device == "cpu" else decode_tensors(frames, device)


async def hosted_and_reference(
    on_host: OnHost, cls: type[Analyzer], config: dict[str, Any], images: list[Image], device: str
) -> tuple[Analyzer, list[Picture], list[FrameInfo]]:
    """Run a ``cls`` analyzer (one that takes tensors) behind a host over ``images`` on ``device``,
    with picture copies refused (:func:`no_picture_copies`); return a second one, loaded, with the
    reference pictures of the same JPEGs (:func:`decoded_elsewhere`) and their frame infos."""
    hosted, reference = (instantiate(cls, config, device=device) for _ in range(2))
    assert hosted.inputs == "tensor"
    with on_host.monkeypatch.context() as patched:
        no_picture_copies(patched)
        await run_host(on_host.bus, on_host.nats_settings, [hosted], images, on_host.results)
    reference.load()
    frames = [make_frame("cam", i, image) for i, image in enumerate(images, start=1)]
    infos = [FrameInfo("cam", f.seq, f.width, f.height) for f in frames]
    return reference, decoded_elsewhere(frames, device), infos


async def host_pictures(
    bus: Bus, nats_settings: NatsSettings, images: list[Image], results: Results, device: str
) -> tuple[list[Picture], list[Picture]]:
    """Run a host with a numpy and a tensor analyzer over ``images``; what each was handed."""
    numpy_side, tensor_side = Recorder(), TensorRecorder(TensorRecorder.Config(device=device))
    await run_host(bus, nats_settings, [numpy_side, tensor_side], images, results)
    return numpy_side.seen, tensor_side.seen


def assert_same_pictures(arrays: list[Picture], tensors: list[Picture], device: str) -> None:
    assert len(arrays) == len(tensors)
    for array, tensor in zip(arrays, tensors, strict=True):
        assert isinstance(array, np.ndarray) and array.shape == (272, 640, 3) and array.dtype == np.uint8
        assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.uint8
        assert tuple(tensor.shape) == (3, 272, 640) and tensor.device.type == torch.device(device).type
        # RGB, channel first: the same pixels as OpenCV's BGR array, up to the two libjpegs' rounding.
        as_bgr = tensor.permute(1, 2, 0).flip(-1).cpu().numpy().astype(int)
        assert np.abs(as_bgr - array).mean() < 1.0


async def test_a_tensor_analyzer_gets_rgb_tensors_and_the_others_numpy(
    bus: Bus,
    nats_settings: NatsSettings,
    bikes: list[Any],
    results: Results,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as patched:
        no_host_copies(patched)
        arrays, tensors = await host_pictures(bus, nats_settings, bikes[:6], results, "cpu")
    assert_same_pictures(arrays, tensors, "cpu")
    assert all(not r.skipped for r in results.items)


def test_frames_the_jpeg_decoder_refuses_come_as_tensors_or_a_reason(bikes: list[Any]) -> None:
    ok, png = cv2.imencode(".png", bikes[0])
    assert ok
    frames = [
        frame_pb2.Frame(data=png.tobytes(), encoding=frame_pb2.IMAGE_ENCODING_PNG),
        frame_pb2.Frame(
            data=bikes[1].tobytes(), width=640, height=272, encoding=frame_pb2.IMAGE_ENCODING_RAW_BGR
        ),
        frame_pb2.Frame(data=b"\xff\xd8 not a jpeg", encoding=frame_pb2.IMAGE_ENCODING_JPEG),
    ]
    png_tensor, raw_tensor, garbage = decode_tensors(frames, "cpu")
    assert torch.equal(png_tensor, torch.from_numpy(bikes[0][:, :, ::-1].copy()).permute(2, 0, 1))
    assert torch.equal(raw_tensor, torch.from_numpy(bikes[1][:, :, ::-1].copy()).permute(2, 0, 1))
    assert garbage == decode_frame(frames[2]) and "not a valid JPEG" in garbage
    assert picture_size(png_tensor) == picture_size(bikes[0]) == (272, 640)


def test_the_kit_hands_each_analyzer_its_kind() -> None:
    frames = synthetic_frames(3)
    tensor_side, numpy_side = TensorRecorder(TensorRecorder.Config(device="cpu")), Recorder()
    list(run_on_frames(tensor_side, frames))
    list(run_on_frames(numpy_side, frames))
    assert all(isinstance(p, torch.Tensor) and tuple(p.shape) == (3, 240, 320) for p in tensor_side.seen)
    assert all(isinstance(p, np.ndarray) and p.shape == (240, 320, 3) for p in numpy_side.seen)
    check_conformance(TensorRecorder)
    check_conformance(Recorder)


@pytest.mark.parametrize(
    ("cls", "problem"),
    [
        (FlipsChannels, "flips_channels: declares inputs = 'tensor' but failed on RGB 3xHxW uint8 tensors"),
        (ScalesInPlace, "scales_in_place: changed its input tensors in place"),
    ],
)
def test_the_kit_catches_an_analyzer_that_mishandles_tensors(cls: type[FrameAnalyzer], problem: str) -> None:
    with pytest.raises(ConformanceError, match=problem):
        check_conformance(cls)


def test_the_kit_refuses_an_unknown_input_kind() -> None:
    class Arrays(Recorder):
        name = "arrays"
        inputs = "arrays"  # type: ignore[assignment]

    with pytest.raises(ConformanceError, match="inputs must be 'numpy' or 'tensor', not 'arrays'"):
        check_conformance(Arrays)


def test_the_torchvision_detector_takes_tensors() -> None:
    assert TorchvisionDetector.inputs == "tensor"
