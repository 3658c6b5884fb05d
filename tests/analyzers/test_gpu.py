"""The GPU paths: nvJPEG decode in the host, torch analyzers on CUDA, their pictures kept there.
Skipped without a CUDA device (CI has none); they ran on the project's GPU machine
(docs/performance.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from analyzer_helpers import OnHost, Results
from camsight.analyzers.devices import cuda_available
from camsight.analyzers.pictures import decode_frames, decode_jpegs_gpu
from camsight.analyzers.testing import check_conformance
from camsight.bus import Bus
from camsight.config import NatsSettings
from camsight.decoder.frames import resize_and_encode
from camsight.v1 import frame_pb2
from camsight_torch.detection import TorchvisionDetector
from camsight_torch.video import TorchVideoClassifier
from helpers import sample_video
from test_torch import video_windows_stay_on_the_device
from test_yolo_exports import the_device_letterbox_is_opencvs, yolo_letterboxes_on_the_device

pytestmark = pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device")


def bikes_jpegs(count: int) -> list[frame_pb2.Frame]:
    capture = cv2.VideoCapture(str(sample_video("bikes.mp4")))
    frames: list[frame_pb2.Frame] = []
    while len(frames) < count:
        ok, image = capture.read()
        assert ok
        encoded = resize_and_encode(image, 640, 640, 85)
        assert encoded is not None
        frames.append(
            frame_pb2.Frame(
                data=encoded.data,
                width=encoded.width,
                height=encoded.height,
                encoding=frame_pb2.IMAGE_ENCODING_JPEG,
            )
        )
    capture.release()
    return frames


def test_nvjpeg_decodes_what_opencv_decodes() -> None:
    frames = bikes_jpegs(8)
    on_gpu = decode_jpegs_gpu([f.data for f in frames])
    on_cpu = decode_frames(frames, gpu=False)
    for i, (gpu, cpu) in enumerate(zip(on_gpu, on_cpu, strict=True)):
        assert isinstance(gpu, np.ndarray) and isinstance(cpu, np.ndarray), f"frame {i}"
        assert gpu.shape == cpu.shape == (272, 640, 3) and gpu.dtype == np.uint8
        # Same picture, same channel order (BGR): two JPEG decoders differ by rounding only.
        assert np.abs(gpu.astype(int) - cpu).mean() < 2, f"frame {i}"


def test_a_corrupt_jpeg_in_a_gpu_batch_fails_alone() -> None:
    frames = bikes_jpegs(4)
    frames[2] = frame_pb2.Frame(data=b"\xff\xd8 not a jpeg", encoding=frame_pb2.IMAGE_ENCODING_JPEG)
    decoded = decode_frames(frames, gpu=True)
    assert isinstance(decoded[2], str) and "not a valid JPEG" in decoded[2]
    others = [d for i, d in enumerate(decoded) if i != 2]
    assert all(isinstance(d, np.ndarray) and d.shape == (272, 640, 3) for d in others)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_analyzers_pass_conformance_on_the_gpu(precision: str) -> None:
    # Random weights: plumbing on the device only (tensors, precision, results back on the CPU).
    detector = {
        "model": "fasterrcnn_mobilenet_v3_large_fpn",
        "random_weights": True,
        "min_score": 0.0,
        "precision": precision,
        "model_kwargs": {"box_detections_per_img": 5},
    }
    check_conformance(TorchvisionDetector, detector, batch=4, device="cuda")
    video = {"random_weights": True, "window": 8, "size": 112, "min_score": 0.0, "top_k": 2}
    check_conformance(TorchVideoClassifier, {**video, "precision": precision}, batch=2, device="cuda")


async def test_tensor_analyzers_get_nvjpeg_output_on_the_device_never_copied_to_the_host(
    bus: Bus, nats_settings: NatsSettings, bikes: list[Any], results: Results, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_pictures import assert_same_pictures, host_pictures, no_host_copies

    with monkeypatch.context() as patched:
        no_host_copies(patched)  # the host never calls .cpu() or .numpy() on a picture
        arrays, tensors = await host_pictures(bus, nats_settings, bikes[:6], results, "cuda")
    assert_same_pictures(arrays, tensors, "cuda")


async def test_torch_video_windows_stay_on_the_gpu(on_host: OnHost, bikes: list[Any], tmp_path: Path) -> None:
    await video_windows_stay_on_the_device(on_host, bikes[:8], tmp_path, "cuda")


def test_the_gpu_letterbox_is_opencvs(frames: list[Any]) -> None:
    the_device_letterbox_is_opencvs(frames, "cuda")


async def test_yolo_on_torch_letterboxes_nvjpeg_output_on_the_gpu(
    on_host: OnHost, frames: list[Any], exports: dict[str, Path]
) -> None:
    await yolo_letterboxes_on_the_device(on_host, frames, exports["yolov8n"], "cuda")
