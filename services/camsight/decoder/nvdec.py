"""Video files decoded by the GPU's NVDEC (torchcodec's CUDA decoder), chosen per camera.

A camera's ``decode`` (decision 0077) is ``cpu`` (FFmpeg through OpenCV, as
always), ``nvdec``, or ``auto`` (NVDEC where it can run). NVDEC runs only
where everything it needs is there: a file (live streams keep FFmpeg's low
latency path), a codec NVDEC decodes, torchcodec installed and loadable, and a
CUDA device. :func:`open_nvdec` says which of these is missing, and the
camera opens the CPU source instead (warning once for ``nvdec``): never a crash.

torch and torchcodec are imported only when a camera asks for NVDEC, so CPU
decoder nodes never load them. The pictures stay on the GPU for the JPEG
encoder (:mod:`camsight.decoder.nvjpeg`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from camsight.cameras import VideoDecode
from camsight.decoder.sources import (
    EndOfSource,
    FrameFilter,
    Grabbed,
    Source,
    SourceError,
    SourceKind,
    classify,
)

NVDEC_CODECS = frozenset(
    {"h264", "hevc", "av1", "vp8", "vp9", "mpeg1video", "mpeg2video", "mpeg4", "vc1", "mjpeg"}
)
"""FFmpeg's names of the codecs NVDEC decodes (NVIDIA's Video Codec SDK support matrix)."""

NVIDIA_DEVICE_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia/version")
"""Present where the NVIDIA driver is (in containers too, with the NVIDIA container runtime)."""


def open_nvdec(uri: str, decode: VideoDecode, fallback: Callable[[str], None]) -> Source | None:
    """The opened NVDEC source of ``uri`` when ``decode`` asks for it and this node can decode it;
    else None, after telling ``fallback`` why (the caller opens the CPU source)."""
    if decode is VideoDecode.CPU:
        return None
    kind, target = classify(uri)
    problem = nvdec_problem(kind, target)
    if problem is None:
        source = NvdecSource(target)
        try:
            source.open()
            return source
        except SourceError as exc:
            problem = str(exc)
    fallback(problem)
    return None


def nvdec_problem(kind: SourceKind, path: str) -> str | None:
    """Why NVDEC cannot decode this source on this node (None: it can), in words for a warning."""
    if kind is not SourceKind.FILE:
        return f"NVDEC decodes files here, not {kind.value} sources"
    try:
        with av.open(path) as container:
            streams = container.streams.video
            codec = streams[0].codec_context.name if streams else None
    except (av.FFmpegError, OSError) as exc:
        return f"cannot read the container's codec: {exc}"
    if codec not in NVDEC_CODECS:
        return f"NVDEC cannot decode codec {codec}"
    return cuda_problem("torchcodec")


def cuda_problem(library: str) -> str | None:
    """Why ``library`` (a torch library with CUDA kernels) cannot run on this node's GPU (None: it can).

    Shared by NVDEC (torchcodec) and nvJPEG (torchvision, :mod:`camsight.decoder.nvjpeg`).
    """
    if importlib.util.find_spec(library) is None:
        return f"{library} is not installed (pip install 'camsight[torch]')"
    if not any(Path(p).exists() for p in NVIDIA_DEVICE_FILES):
        # Before importing torch (seconds, hundreds of MiB): a CPU node's `auto` cameras stay cheap.
        return "this node has no NVIDIA GPU (no driver device file)"
    import torch

    if not torch.cuda.is_available():
        return "this node has no CUDA device"
    return None


class NvdecSource:
    """A video file decoded on the GPU; pictures stay there as RGB ``3 x H x W`` uint8 tensors.

    The JPEG encoder (:mod:`camsight.decoder.nvjpeg`) encodes them there with
    nvJPEG, or copies them to host memory for OpenCV (decision 0078); the
    frames still cross the bus as JPEGs (decision 0075).
    """

    kind = SourceKind.FILE

    def __init__(self, path: str) -> None:
        self.path = path
        self._decoder: Any = None
        self._fps = 0.0
        self._index = 0

    def open(self) -> None:
        """Open the file on the GPU; a failure (FFmpeg libraries, driver) is a :class:`SourceError`."""
        from torchcodec.decoders import VideoDecoder

        try:
            self._decoder = VideoDecoder(self.path, device="cuda", seek_mode="approximate")
        except (RuntimeError, ValueError, OSError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SourceError(f"NVDEC cannot open the file: {first}", permanent=True) from None
        metadata = self._decoder.metadata
        self._fps = float(metadata.average_fps or 0.0)
        self._index = 0

    def seek(self, media_time: float) -> None:
        if media_time > 0 and self._fps > 0:
            self._index = round(media_time * self._fps)

    def grab(self, take: FrameFilter) -> Grabbed | None:
        """Decode the next picture if the sampler takes it; None when it is skipped."""
        assert self._decoder is not None, "open() first"
        if self._index >= len(self._decoder):
            raise EndOfSource
        index = self._index
        self._index += 1
        media_time = index / self._fps if self._fps > 0 else 0.0
        if not take(media_time):
            return None
        return Grabbed(self._decoder[index], media_time)

    def progress(self) -> float:
        total = len(self._decoder) if self._decoder is not None else 0
        return min(1.0, self._index / total) if total else 0.0

    def close(self) -> None:
        self._decoder = None
