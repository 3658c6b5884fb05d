"""Video files decoded by the GPU's NVDEC (NVIDIA's PyNvVideoCodec), chosen per camera.

A camera's ``decode`` (decision 0077) is ``cpu`` (FFmpeg through OpenCV, as
always), ``nvdec``, or ``auto`` (NVDEC where it can run). NVDEC runs only
where everything it needs is there: a file (live streams keep FFmpeg's low
latency path), a codec NVDEC decodes, PyNvVideoCodec and torch installed (the
``nvdec`` extra), and a CUDA device. :func:`open_nvdec` says which of these is
missing, and the camera opens the CPU source instead (warning once for
``nvdec``): never a crash.

PyNvVideoCodec, not torchcodec: torchcodec's wheel on PyPI is built without
CUDA (its CUDA build comes from PyTorch's own package index, per CUDA version),
so ``pip install camsight[torch]`` could never decode on the GPU with it;
PyNvVideoCodec's PyPI wheel carries NVDEC support and its own demuxer and needs
only the driver (decision 0077, "The library, again").

torch and PyNvVideoCodec are imported only when a camera asks for NVDEC, so CPU
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
    Length,
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
    return cuda_problem("PyNvVideoCodec")


def cuda_problem(library: str, extra: str = "nvdec") -> str | None:
    """Why ``library`` (a library with CUDA kernels, used with torch) cannot run on this node's
    GPU (None: it can).

    Shared by NVDEC (PyNvVideoCodec) and nvJPEG (torchvision, :mod:`camsight.decoder.nvjpeg`).
    """
    for name in dict.fromkeys(("torch", library)):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed (pip install 'camsight[{extra}]')"
    if not any(Path(p).exists() for p in NVIDIA_DEVICE_FILES):
        # Before importing torch (seconds, hundreds of MiB): a CPU node's `auto` cameras stay cheap.
        return "this node has no NVIDIA GPU (no driver device file)"
    import torch

    if not torch.cuda.is_available():
        return "this node has no CUDA device"
    return None


PREFETCH = 8
"""Pictures PyNvVideoCodec's decoder thread decodes ahead of the camera (6 MB each at 1080p)."""


class NvdecSource:
    """A video file decoded on the GPU; pictures stay there as RGB ``3 x H x W`` uint8 tensors.

    PyNvVideoCodec's ``ThreadedDecoder``, which NVIDIA documents for linear
    access (it decodes :data:`PREFETCH` pictures ahead on a thread of its own),
    not its random-access ``SimpleDecoder``: a camera reads its file in order,
    and seeks only to resume. The JPEG encoder (:mod:`camsight.decoder.nvjpeg`)
    encodes the pictures on the GPU with nvJPEG, or copies them to host memory
    for OpenCV (decision 0078); the frames still cross the bus as JPEGs
    (decision 0075).
    """

    kind = SourceKind.FILE

    def __init__(self, path: str) -> None:
        self.path = path
        self._decoder: Any = None
        self._fps = 0.0
        self._size = (0, 0)  # height, width
        self._frames = 0
        self._index = 0

    def open(self) -> None:
        """Open the file on the GPU; whatever stops that (the driver, the file) is a :class:`SourceError`."""
        try:
            import PyNvVideoCodec as nvc
            import torch

            decoder = nvc.ThreadedDecoder(
                self.path,
                PREFETCH,
                gpu_id=torch.cuda.current_device(),
                use_device_memory=True,
                output_color_type=nvc.OutputColorType.RGBP,  # planar: 3 x H x W, as nvJPEG takes it
            )
            metadata = decoder.get_stream_metadata()
            frames = len(decoder)
        except Exception as exc:  # a foreign native library: any error means "not here"
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SourceError(f"NVDEC cannot open the file: {first}", permanent=True) from None
        if frames == 0:  # the container states no frame count (an elementary stream, some MKV)
            problem = "NVDEC cannot open the file: its container states no frame count"
            raise SourceError(problem, permanent=True)
        self._decoder = decoder
        self._fps = float(metadata.average_fps or 0.0)
        self._size = (int(metadata.height), int(metadata.width))
        self._frames = frames
        self._index = 0

    def seek(self, media_time: float) -> None:
        """Go on from the picture at ``media_time`` (a resumed camera)."""
        if media_time > 0 and self._fps > 0:
            self._index = min(round(media_time * self._fps), self._frames)
            if self._index < self._frames:
                try:
                    self._decoder.reconfigure_decoder(self.path, start_frame=self._index)
                except Exception as exc:  # a foreign native library, as in open()
                    raise SourceError(
                        f"NVDEC cannot seek to {media_time:.3f} s: {exc}", permanent=True
                    ) from None

    def grab(self, take: FrameFilter) -> Grabbed | None:
        """Decode the next picture; None when the sampler does not take it."""
        assert self._decoder is not None, "open() first"
        index = self._index
        media_time = index / self._fps if self._fps > 0 else 0.0
        try:
            decoded = self._decoder.get_batch_frames(1) if index < self._frames else []
        except Exception:  # the native decoder failed on this picture: corrupt, as on the CPU path
            self._index += 1
            return Grabbed(None, media_time)
        if not decoded:
            raise EndOfSource
        self._index += 1
        if not take(media_time):
            return None
        import torch

        # The decoder reuses its buffers for the pictures it decodes ahead, while this one may
        # wait for the encoder: a copy on the device (6 MB at 1080p) is the picture's own.
        picture = torch.from_dlpack(decoded[0]).reshape(3, *self._size).clone()
        return Grabbed(picture, media_time)

    def progress(self) -> float:
        return min(1.0, self._index / self._frames) if self._frames else 0.0

    def shortfall(self) -> str | None:
        """A file that ended before the frame count its container states (see :class:`Length`)."""
        read = self._index / self._fps if self._fps > 0 else 0.0
        return Length.of_frames(self._frames, self._fps).shortfall(read, self._index, self._fps)

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.end()
        self._decoder = None
