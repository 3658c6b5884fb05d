"""Hardware decode by config (decision 0077): a camera asking for NVDEC where it cannot run
(no GPU, a codec NVDEC does not decode) is decoded on the CPU, with one warning."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from camsight.analyzers.devices import cuda_available
from camsight.bus import Bus
from camsight.cameras import CameraConfig, VideoDecode
from camsight.decoder.nvdec import NvdecSource, nvdec_problem, open_nvdec
from camsight.decoder.sources import SourceKind
from camsight.v1 import camera_pb2
from decoder_support import Frames, StartDecoder, camera_status, state_is
from helpers import sample_video, wait_for
from pydantic import ValidationError

FALLBACK = "asks for NVDEC but"


def ffv1_video(path: Path, frames: int = 12) -> Path:
    """A real video in a codec NVDEC cannot decode (FFV1, lossless), from the bikes sample."""
    capture = cv2.VideoCapture(str(sample_video("bikes.mp4")))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 640, 272, "yuv420p"
        for _ in range(frames):
            ok, image = capture.read()
            assert ok
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode())
    capture.release()
    return path


def fallback_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and FALLBACK in r.getMessage()
    ]


@pytest.mark.skipif(
    cuda_available(), reason="this node has a GPU: NVDEC runs (tests/decoder/test_nvdec.py GPU test)"
)
async def test_nvdec_on_a_node_without_a_gpu_decodes_on_the_cpu_with_one_warning(
    bus: Bus, start_decoder: StartDecoder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    source = str(sample_video("bikes.mp4"))
    frames = await Frames.subscribe(bus, "bikes")
    camera = CameraConfig(id="bikes", source=source, pacing="realtime", decode="nvdec", max_width=320)
    await start_decoder([camera])
    await wait_for(lambda: len(frames.frames) >= 5, 15, "frames decoded on the CPU")
    await wait_for(state_is(bus, "bikes", camera_pb2.CAMERA_STATE_ONLINE), 5, "online status")
    first = frames.frames[0]
    assert (first.width, first.height) == (320, 136)
    assert cv2.imdecode(np.frombuffer(first.data, np.uint8), cv2.IMREAD_COLOR).shape == (136, 320, 3)
    [warning] = fallback_warnings(caplog)
    assert warning.startswith("camera bikes asks for NVDEC but") and warning.endswith("decoding on the CPU")


async def test_a_codec_nvdec_cannot_decode_falls_back_to_the_cpu_with_one_warning(
    bus: Bus, start_decoder: StartDecoder, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO)
    video = ffv1_video(tmp_path / "ffv1.mkv")
    frames = await Frames.subscribe(bus, "lossless")
    camera = CameraConfig(id="lossless", source=str(video), pacing="realtime", decode="nvdec")
    await start_decoder([camera])
    await wait_for(lambda: frames.end is not None, 20, "the whole file, then its end marker")
    assert len(frames.frames) == 12 and (frames.frames[0].width, frames.frames[0].height) == (640, 272)
    assert fallback_warnings(caplog) == [
        "camera lossless asks for NVDEC but NVDEC cannot decode codec ffv1: decoding on the CPU"
    ]
    status = await camera_status(bus, "lossless")
    assert status is not None and status.frames_published == 12


def test_auto_falls_back_silently_and_cpu_never_probes(tmp_path: Path) -> None:
    told: list[str] = []
    assert open_nvdec(str(sample_video("bikes.mp4")), VideoDecode.CPU, told.append) is None
    assert told == []
    assert open_nvdec(str(ffv1_video(tmp_path / "v.mkv", 2)), VideoDecode.AUTO, told.append) is None
    assert told == ["NVDEC cannot decode codec ffv1"]
    assert (
        nvdec_problem(SourceKind.NETWORK, "rtsp://cam/1") == "NVDEC decodes files here, not network sources"
    )


def test_the_decode_setting_round_trips_and_bad_values_name_the_field() -> None:
    camera = CameraConfig(id="c", source="/videos/a.mp4", decode="nvdec")
    assert CameraConfig.from_proto(camera.to_proto()).decode is VideoDecode.NVDEC
    assert CameraConfig.from_proto(camera_pb2.Camera(id="c", source_uri="/v.mp4")).decode is VideoDecode.AUTO
    with pytest.raises(ValidationError, match="decode"):
        CameraConfig(id="c", source="/videos/a.mp4", decode="gpu")


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device (NVDEC)")
def test_nvdec_decodes_the_pictures_ffmpeg_decodes() -> None:
    source = str(sample_video("bikes.mp4"))
    assert nvdec_problem(SourceKind.FILE, source) is None
    gpu = NvdecSource(source)
    gpu.open()
    capture = cv2.VideoCapture(source)
    try:
        for _ in range(5):
            grabbed = gpu.grab(lambda _t: True)
            ok, expected = capture.read()
            assert grabbed is not None and grabbed.image is not None and ok
            assert grabbed.image.shape == expected.shape == (272, 640, 3)
            # Same picture, BGR: two H.264 decoders and colour conversions differ by rounding only.
            assert np.abs(grabbed.image.astype(int) - expected).mean() < 3
    finally:
        gpu.close()
        capture.release()
