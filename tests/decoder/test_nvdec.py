"""Hardware decode and encode by config (decisions 0077, 0078): a camera asking for NVDEC where
it cannot run (no GPU, a codec NVDEC does not decode) is decoded on the CPU, and a decoder asking
for nvJPEG where it cannot run encodes on the CPU, each with one warning; on a GPU, NVDEC's and
nvJPEG's pictures match FFmpeg's and OpenCV's."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import av
import cv2
import numpy as np
import pytest
from camsight.analyzers.devices import cuda_available
from camsight.analyzers.pictures import tensor_to_image
from camsight.bus import Bus, subjects
from camsight.cameras import CameraConfig, VideoDecode
from camsight.decoder.frames import resize_and_encode
from camsight.decoder.nvdec import NvdecSource, nvdec_problem, open_nvdec
from camsight.decoder.nvjpeg import FrameEncoder, encode_tensors
from camsight.decoder.settings import DecoderSettings, JpegEncode
from camsight.decoder.sources import EndOfSource, SourceError, SourceKind
from camsight.v1 import camera_pb2, frame_pb2
from decoder_support import (
    TRUNCATED,
    Frames,
    StartDecoder,
    camera_status,
    read_to_the_end,
    state_is,
    truncated_video,
)
from helpers import sample_video, wait_for
from nats.js.api import AckPolicy, ConsumerConfig
from pydantic import ValidationError

if TYPE_CHECKING:
    import torch

FALLBACK = "asks for NVDEC but"
ENCODE_FALLBACK = "cannot encode on the GPU"


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


async def play_whole(bus: Bus, start_decoder: StartDecoder, camera: CameraConfig, **settings: Any) -> Frames:
    """The frames a decoder with ``settings`` publishes of ``camera``'s whole file (and its end marker)."""
    frames = await Frames.subscribe(bus, camera.id)
    await start_decoder([camera], **settings)
    await wait_for(lambda: frames.end is not None, 20, "the whole file, then its end marker")
    return frames


def fallback_warnings(caplog: pytest.LogCaptureFixture, fallback: str = FALLBACK) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and fallback in r.getMessage()
    ]


def decoded(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


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
    camera = CameraConfig(id="lossless", source=str(video), pacing="realtime", decode="nvdec")
    frames = await play_whole(bus, start_decoder, camera)
    assert len(frames.frames) == 12 and (frames.frames[0].width, frames.frames[0].height) == (640, 272)
    assert fallback_warnings(caplog) == [
        "camera lossless asks for NVDEC but NVDEC cannot decode codec ffv1: decoding on the CPU"
    ]
    # The status's count is final once the camera has ended (written after its end marker).
    await wait_for(state_is(bus, "lossless", camera_pb2.CAMERA_STATE_ENDED), 10, "the camera ended")
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


@pytest.mark.skipif(cuda_available(), reason="this node has a GPU: NVDEC opens the file")
def test_nvdec_that_cannot_start_here_is_a_one_line_source_error() -> None:
    # Past the probe (a node whose driver files exist but whose video libraries do not, say),
    # whatever PyNvVideoCodec or CUDA raises becomes the reason of the CPU fallback.
    with pytest.raises(SourceError, match=r"^NVDEC cannot open the file: [^\n]+$") as error:
        NvdecSource(str(sample_video("bikes.mp4"))).open()
    assert error.value.permanent


def test_the_decode_setting_round_trips_and_bad_values_name_the_field() -> None:
    camera = CameraConfig(id="c", source="/videos/a.mp4", decode="nvdec")
    assert CameraConfig.from_proto(camera.to_proto()).decode is VideoDecode.NVDEC
    assert CameraConfig.from_proto(camera_pb2.Camera(id="c", source_uri="/v.mp4")).decode is VideoDecode.AUTO
    with pytest.raises(ValidationError, match="decode"):
        CameraConfig(id="c", source="/videos/a.mp4", decode="gpu")


@pytest.mark.parametrize("mode", [JpegEncode.AUTO, JpegEncode.CPU])
def test_the_encoder_keeps_the_order_of_pictures_on_either_side(
    mode: JpegEncode, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch mixing tensors (encoded together by torchvision; libjpeg here, nvJPEG on a GPU)
    and arrays (OpenCV) comes back in its order; ``cpu`` sends tensors to OpenCV too."""
    import torch

    capture = cv2.VideoCapture(str(sample_video("bikes.mp4")))
    pictures = [capture.read()[1] for _ in range(4)]
    capture.release()
    as_tensors = [torch.from_numpy(bgr).permute(2, 0, 1).flip(0) for bgr in pictures]
    mixed = [as_tensors[0], pictures[1], as_tensors[2], pictures[3]]
    encoder = FrameEncoder(CameraConfig(id="mixed", source="/v.mp4", max_width=320), mode)
    assert encoder.batches(as_tensors[0]) is (mode is JpegEncode.AUTO)
    assert not encoder.batches(pictures[0])
    for got, bgr in zip(encoder.encode(mixed), pictures, strict=True):
        expected = resize_and_encode(bgr, 320, 320, encoder.camera.jpeg_quality)
        assert got is not None and expected is not None and (got.width, got.height) == (320, 136)
        assert np.abs(decoded(got.data).astype(int) - decoded(expected.data)).mean() < 3
    assert fallback_warnings(caplog, ENCODE_FALLBACK) == []


def nvdec_beside_ffmpeg(source: str, count: int = 5) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """The first ``count`` pictures of ``source`` as NVDEC leaves them (RGB tensors on the GPU),
    each beside FFmpeg's (BGR arrays, through OpenCV)."""
    gpu = NvdecSource(source)
    gpu.open()
    capture = cv2.VideoCapture(source)
    try:
        for _ in range(count):
            grabbed = gpu.grab(lambda _t: True)
            ok, bgr = capture.read()
            assert grabbed is not None and grabbed.image is not None and ok
            assert not isinstance(grabbed.image, np.ndarray) and grabbed.image.device.type == "cuda"
            yield grabbed.image, bgr
    finally:
        gpu.close()
        capture.release()


class PlanarDecoder:
    """PyNvVideoCodec's ``ThreadedDecoder`` as this project uses it (planar RGB frames in
    order, exported through DLPack as a ``3H x W`` array; stream metadata; a restart at a
    frame; the end), over OpenCV's decode of the file."""

    def __init__(self, path: str, buffer_size: int, **options: Any) -> None:
        assert buffer_size > 0 and options["use_device_memory"] and options["output_color_type"] == "RGBP"
        capture = cv2.VideoCapture(path)
        self.pictures = []
        while (grabbed := capture.read())[0]:
            self.pictures.append(np.ascontiguousarray(grabbed[1][:, :, ::-1].transpose(2, 0, 1)))
        self.fps = capture.get(cv2.CAP_PROP_FPS)
        capture.release()
        self.next = options.get("start_frame", 0)
        self.ended = False
        self.broken = {61}  # a picture the hardware fails on

    def get_stream_metadata(self) -> Any:
        _, height, width = self.pictures[0].shape
        return SimpleNamespace(width=width, height=height, average_fps=self.fps, num_frames=len(self))

    def __len__(self) -> int:
        return len(self.pictures)

    def reconfigure_decoder(self, path: str, start_frame: int = 0) -> None:
        self.next = start_frame

    def get_batch_frames(self, count: int) -> list[Any]:
        import torch

        if self.next in self.broken:
            self.next += 1
            raise RuntimeError("HW decode failed")
        batch = self.pictures[self.next : self.next + count]
        self.next += len(batch)
        return [torch.from_numpy(p.reshape(-1, p.shape[2])) for p in batch]

    def end(self) -> None:
        self.ended = True


def test_nvdec_source_plumbing_with_the_library_faked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Plumbing only: PyNvVideoCodec (and CUDA) replaced by a decoder of the same interface
    # over OpenCV, on the CPU, to check this project's side of it (shapes, order, sampling,
    # seeking, the end) before a device is lent; the GPU tests below run the real library.
    import torch

    fake = SimpleNamespace(ThreadedDecoder=PlanarDecoder, OutputColorType=SimpleNamespace(RGBP="RGBP"))
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", fake)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    source = NvdecSource(str(sample_video("carphone_pristine.mp4")))
    source.open()
    capture = cv2.VideoCapture(source.path)
    grabbed = source.grab(lambda t: True)
    ok, bgr = capture.read()
    assert grabbed is not None and isinstance(grabbed.image, torch.Tensor) and ok
    assert grabbed.image.shape == (3, 144, 176) and grabbed.media_time == 0.0
    assert np.array_equal(tensor_to_image(grabbed.image), bgr)
    assert source.grab(lambda t: False) is None  # the sampler skips the second picture
    source.seek(2.0)  # 2 s at 29.97 fps: picture 60
    grabbed = source.grab(lambda t: True)
    capture.set(cv2.CAP_PROP_POS_FRAMES, 60)
    ok, bgr = capture.read()
    assert grabbed is not None and grabbed.media_time == pytest.approx(60 / 29.97, abs=1e-3) and ok
    assert np.array_equal(tensor_to_image(grabbed.image), bgr)
    corrupt = source.grab(lambda t: True)  # picture 61: counted corrupt, as on the CPU path
    assert corrupt is not None and corrupt.image is None
    assert corrupt.media_time == pytest.approx(61 / 29.97, abs=1e-3)
    grabbed = source.grab(lambda t: True)  # and the camera goes on with picture 62
    assert grabbed is not None and grabbed.media_time == pytest.approx(62 / 29.97, abs=1e-3)
    while source.progress() < 1.0:
        source.grab(lambda t: False)
    with pytest.raises(EndOfSource):
        source.grab(lambda t: True)
    decoder = source._decoder
    source.close()
    assert decoder.ended  # the decoder thread is stopped
    capture.release()


class CutDecoder(PlanarDecoder):
    """:class:`PlanarDecoder` over a truncated file: the container's frame count (bikes.mp4's
    250) is more than the pictures there are (what PyNvVideoCodec reports is not verified here)."""

    def __len__(self) -> int:
        return 250


def test_nvdec_says_how_much_of_a_truncated_file_it_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import torch

    fake = SimpleNamespace(ThreadedDecoder=CutDecoder, OutputColorType=SimpleNamespace(RGBP="RGBP"))
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", fake)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    source = NvdecSource(str(truncated_video(tmp_path / "cut.mp4")))
    source.open()
    assert read_to_the_end(source) == 140
    assert source.shortfall() == TRUNCATED
    source.close()


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device (NVDEC)")
def test_nvdec_decodes_the_pictures_ffmpeg_decodes() -> None:
    source = str(sample_video("bikes.mp4"))
    assert nvdec_problem(SourceKind.FILE, source) is None
    for picture, expected in nvdec_beside_ffmpeg(source):
        image = tensor_to_image(picture)
        assert image.shape == expected.shape == (272, 640, 3)
        # Same picture, BGR: two H.264 decoders and colour conversions differ by rounding only.
        assert np.abs(image.astype(int) - expected).mean() < 3


@pytest.mark.skipif(
    cuda_available(), reason="this node has a GPU: nvJPEG runs (tests/decoder/test_nvdec.py GPU tests)"
)
async def test_nvjpeg_on_a_node_without_a_gpu_publishes_every_frame_with_one_warning(
    bus: Bus, start_decoder: StartDecoder, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO)
    video = ffv1_video(tmp_path / "clip.mkv")
    camera = CameraConfig(id="clip", source=str(video), pacing="realtime", decode="cpu", max_width=320)
    frames = await play_whole(bus, start_decoder, camera, encode="nvjpeg")
    # Every frame, at the CPU path's size and media times (10 fps), encoded by OpenCV.
    assert [round(f.media_time.ToTimedelta().total_seconds(), 2) for f in frames.frames] == [
        i / 10 for i in range(12)
    ]
    assert {(f.width, f.height) for f in frames.frames} == {(320, 136)}
    assert decoded(frames.frames[0].data).shape == (136, 320, 3)
    [warning] = fallback_warnings(caplog, ENCODE_FALLBACK)
    assert warning.startswith("camera clip cannot encode on the GPU: ")
    assert warning.endswith("; encoding on the CPU")
    status = await camera_status(bus, "clip")
    assert status is not None and status.frames_published == 12


def test_the_encode_setting_defaults_to_auto_and_bad_values_name_the_field() -> None:
    assert DecoderSettings().encode is JpegEncode.AUTO
    with pytest.raises(ValidationError, match="encode"):
        DecoderSettings(encode="gpu")


@pytest.mark.parametrize(
    "device",
    [
        "cpu",  # libjpeg through torchvision: the same resize and colour order, tested everywhere
        pytest.param(
            "cuda", marks=pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device (nvJPEG)")
        ),
    ],
)
def test_tensors_encoded_where_they_lie_match_the_opencv_path(device: str) -> None:
    import torch

    capture = cv2.VideoCapture(str(sample_video("bikes.mp4")))
    pictures = [capture.read()[1] for _ in range(2)]
    capture.release()
    assert all(bgr.shape == (272, 640, 3) for bgr in pictures)
    tensors = [torch.from_numpy(bgr).permute(2, 0, 1).flip(0).contiguous().to(device) for bgr in pictures]
    for max_width, max_height in ((640, 640), (320, 320), (200, 100)):
        batch = encode_tensors(tensors, max_width, max_height, 85)  # one call, two pictures, in order
        for got, bgr in zip(batch, pictures, strict=True):
            expected = resize_and_encode(bgr, max_width, max_height, 85)
            assert expected is not None
            sizes = (got.width, got.height, got.source_width, got.source_height)
            assert sizes == (expected.width, expected.height, 640, 272)
            ours, theirs = decoded(got.data), decoded(expected.data)
            assert ours.shape == theirs.shape == (got.height, got.width, 3)
            # Area averaging both, then two JPEG encoders at one quality: rounding apart, never
            # colours swapped nor pictures (either would put the mean difference in the tens).
            assert np.abs(ours.astype(int) - theirs).mean() < 3


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device (NVDEC and nvJPEG)")
def test_nvdec_pictures_are_encoded_on_the_gpu_like_the_cpu_path(caplog: pytest.LogCaptureFixture) -> None:
    """The GPU session's check: NVDEC's tensors, resized and encoded by nvJPEG on the device,
    decode to the pictures FFmpeg + OpenCV give, with no fallback."""
    source = str(sample_video("bikes.mp4"))
    camera = CameraConfig(id="gpu", source=source, max_width=320)
    pictures, cpu_pictures = zip(*nvdec_beside_ffmpeg(source), strict=True)
    encoder = FrameEncoder(camera, JpegEncode.AUTO)
    assert encoder.batches(pictures[0])
    for got, bgr in zip(encoder.encode(list(pictures)), cpu_pictures, strict=True):
        expected = resize_and_encode(bgr, 320, 320, camera.jpeg_quality)
        assert got is not None and expected is not None
        assert (got.width, got.height) == (expected.width, expected.height) == (320, 136)
        assert np.abs(decoded(got.data).astype(int) - decoded(expected.data)).mean() < 4
    assert fallback_warnings(caplog, ENCODE_FALLBACK) == []


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device (NVDEC and nvJPEG)")
async def test_a_gpu_decoder_publishes_nvdec_pictures_encoded_by_nvjpeg(
    bus: Bus, start_decoder: StartDecoder, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the service, lossless (the encode stage keeps NVDEC's tensors for one nvJPEG call
    per publish batch): every one of bikes.mp4's 250 frames, in order, at the CPU path's size,
    and no fallback (decode or encode would warn)."""
    caplog.set_level(logging.INFO)
    camera = CameraConfig(id="gpu", source=str(sample_video("bikes.mp4")), decode="nvdec", max_width=320)
    await start_decoder([camera])  # encode: auto; the camera waits for a consumer reading every frame
    sub = await bus.js.pull_subscribe(
        subjects.frames("gpu"),
        durable="gpu",
        stream=subjects.FRAMES_STREAM,
        config=ConsumerConfig(durable_name="gpu", ack_policy=AckPolicy.EXPLICIT, sample_freq="100%"),
    )
    received: list[frame_pb2.Frame] = []

    async def whole_file() -> bool:
        with contextlib.suppress(TimeoutError):
            for msg in await sub.fetch(32, timeout=0.5):
                received.append(frame_pb2.Frame.FromString(msg.data))
                await msg.ack()
        return bool(received) and received[-1].end_of_stream

    await wait_for(whole_file, 60, "the whole file decoded by NVDEC, encoded by nvJPEG")
    frames = received[:-1]
    assert [f.seq for f in frames] == list(range(1, 251))
    assert {(f.width, f.height) for f in frames} == {(320, 136)}
    assert decoded(frames[-1].data).shape == (136, 320, 3)
    assert fallback_warnings(caplog) == fallback_warnings(caplog, ENCODE_FALLBACK) == []
