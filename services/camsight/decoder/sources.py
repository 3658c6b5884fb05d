"""Opening and reading camera sources (blocking: called from a camera's thread).

A source URI is one of: a video file path or ``file://`` URL (mp4, avi, mkv,
mov, webm, anything FFmpeg decodes), an ``rtsp://``, ``rtmp://`` or
``http(s)://`` URL (OpenCV's FFmpeg backend; RTSP over TCP; open and read
timeouts), a webcam (``/dev/videoN`` or an index such as ``0``), a folder
of images played in name order, or another scheme a source plugin reads
(:mod:`camsight.decoder.plugins`).

Errors are :class:`SourceError` with a message that names the problem and
never contains credentials (URIs are redacted), and a ``permanent`` flag:
a missing or undecodable file will not fix itself, a network camera may.

A file whose index is at its front (an MP4 written with ``faststart``) stays
readable when its end is cut off: it just ends early, as if it were shorter.
:meth:`VideoSource.shortfall` compares where it ended with the length its
container declares for the video, so a truncated file is not taken for a
finished one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable
from urllib.parse import unquote, urlsplit

import av
import cv2
import numpy as np

from camsight.cameras import NETWORK_SCHEMES, is_webcam, source_scheme
from camsight.naming import redact_uri

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# RTSP over TCP: UDP loses packets (grey smears) behind NAT and on busy links.
# OpenCV reads this variable when a capture is opened; a user's value wins.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
# A live camera that is down would print FFmpeg's "[tcp @ 0x…] Connection to tcp://…
# failed" and OpenCV's "WARN … can't be used to capture by name" raw on stderr at every
# retry; the camera's status (logged once per change, in CameraStatus.last_error) says
# it instead. FFmpeg's level is read when OpenCV's FFmpeg backend first opens a capture
# (-8: AV_LOG_QUIET); OpenCV's own errors still print.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

if TYPE_CHECKING:
    import torch

Picture: TypeAlias = "np.ndarray | torch.Tensor"
"""A decoded picture: a BGR ``H x W x 3`` array in host memory, or (NVDEC) an RGB
``3 x H x W`` uint8 tensor on the GPU, left there for the JPEG encoder (decision 0078)."""


class SourceKind(StrEnum):
    FILE = "file"
    NETWORK = "network"
    WEBCAM = "webcam"
    FOLDER = "folder"
    PLUGIN = "plugin"
    """Another URI scheme: a source plugin's (camsight.decoder.plugins), read as a recording."""


class SourceError(Exception):
    """The source cannot be opened or read; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class EndOfSource(Exception):
    """A file or folder was read to its end."""


@dataclass
class Grabbed:
    """A sampled picture; ``image`` is None when it could not be decoded (corrupt)."""

    image: Picture | None
    media_time: float


def classify(uri: str) -> tuple[SourceKind, str]:
    """Which kind of source ``uri`` is, and what to hand to OpenCV (a path, URL or index)."""
    scheme = source_scheme(uri)
    if scheme in NETWORK_SCHEMES:
        return SourceKind.NETWORK, uri
    if scheme and scheme != "file":
        return SourceKind.PLUGIN, uri
    if scheme == "file":
        uri = unquote(urlsplit(uri).path)
    if is_webcam(uri):
        return SourceKind.WEBCAM, uri
    if Path(uri).is_dir():
        return SourceKind.FOLDER, uri
    return SourceKind.FILE, uri


def recording_start(path: str) -> datetime | None:
    """The container's ``creation_time`` tag (what cameras, phones and FFmpeg write), or None.

    Read with PyAV because OpenCV does not expose container metadata. A
    missing, unreadable or malformed tag is None: the caller falls back.
    """
    try:
        with av.open(path) as container:
            tags = dict(container.metadata)
            for stream in container.streams.video[:1]:
                tags = dict(stream.metadata) | tags
    except (av.FFmpegError, OSError):
        return None
    raw = tags.get("creation_time", "")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


FrameFilter = Callable[[float], bool]
"""Decides from a media time whether a picture is kept (the fps sampler)."""


class Source(Protocol):
    kind: SourceKind

    def open(self) -> None: ...
    def seek(self, media_time: float) -> None: ...
    def grab(self, take: FrameFilter) -> Grabbed | None: ...
    def progress(self) -> float: ...
    def close(self) -> None: ...


@runtime_checkable
class Measured(Protocol):
    """A source that knows how long it should be (a video file; plugins need not)."""

    def shortfall(self) -> str | None:
        """After :class:`EndOfSource`: one line saying how much of the declared length was
        never read, or None when it ended where its container said it would."""


TRUNCATION_SLACK_S = 0.5
"""How far short of its declared length a file may end and still count as whole: the
declared length and the last picture's time may disagree by a frame or two (edit lists,
rounding); a cut-off file misses far more."""


@dataclass(frozen=True)
class Length:
    """The length a container declares for a video stream: seconds (0: none) and frames (0: none)."""

    seconds: float
    frames: int

    @classmethod
    def of_frames(cls, frames: int, fps: float) -> Length:
        return cls(frames / fps if frames > 0 and fps > 0 else 0.0, frames)

    def shortfall(self, seconds: float, frames: int, fps: float) -> str | None:
        """``truncated: read 5.6 s of 10.0 s (140 of 250 frames)`` for a file that ended after
        ``frames`` pictures, ``seconds`` into it, more than :data:`TRUNCATION_SLACK_S` (or two
        frames) short of this length; None when it did not, or when no length is declared."""
        slack = max(TRUNCATION_SLACK_S, 2 / fps if fps > 0 else 0.0)
        if self.seconds <= 0 or self.seconds - seconds <= slack:
            return None
        counted = f" ({frames} of {self.frames} frames)" if self.frames else ""
        return f"truncated: read {seconds:.1f} s of {self.seconds:.1f} s{counted}"


def declared_length(path: str) -> Length:
    """What the container says of its first video stream's own length (PyAV; OpenCV
    estimates a missing frame count from the container's duration, which an audio track
    may make longer than the video). None declared, or unreadable: ``Length(0, 0)``."""
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 0)
            if stream.duration and stream.time_base:
                return Length(float(stream.duration * stream.time_base), stream.frames)
            return Length.of_frames(stream.frames, fps)
    except (av.FFmpegError, OSError, IndexError):
        return Length(0.0, 0)


def open_source(
    uri: str,
    *,
    image_fps: float,
    open_timeout_s: float,
    read_timeout_s: float,
    decode_threads: int = 0,
    plugins: Callable[[str], Source] | None = None,
) -> Source:
    """Build and open the source for ``uri``; raises :class:`SourceError`.

    ``decode_threads``: FFmpeg's decoding threads for files and streams (0: one for a
    network stream, FFmpeg's choice of one per core for a file). ``plugins`` builds the
    source of a plugin's scheme (``SourceRegistry.source``).
    """
    kind, target = classify(uri)
    source: Source
    if kind is SourceKind.PLUGIN:
        if plugins is None:
            raise SourceError(f"no source plugins loaded for {redact_uri(uri)}", permanent=True)
        source = plugins(uri)
    elif kind is SourceKind.FOLDER:
        source = FolderSource(Path(target), image_fps)
    else:
        source = VideoSource(kind, target, open_timeout_s, read_timeout_s, decode_threads)
    source.open()
    return source


class VideoSource:
    """A file, network stream or webcam through ``cv2.VideoCapture``."""

    names = (*NETWORK_SCHEMES, "file")
    """The URI schemes it reads (its registration through the camsight_sources hook)."""

    def __init__(
        self,
        kind: SourceKind,
        target: str,
        open_timeout_s: float,
        read_timeout_s: float,
        decode_threads: int = 0,
    ) -> None:
        self.kind = kind
        self.target = target
        self.shown = redact_uri(target)
        self.open_timeout_ms = int(open_timeout_s * 1000)
        self.read_timeout_ms = int(read_timeout_s * 1000)
        self.decode_threads = decode_threads
        self._cap: cv2.VideoCapture | None = None
        self._opened_at = 0.0
        self._frames = 0.0
        self._fps = 0.0
        self._index = 0
        self._length = Length(0.0, 0)
        self._last_media_time = 0.0

    def open(self) -> None:
        if self.kind is SourceKind.FILE:
            path = Path(self.target)
            if not path.is_file():
                raise SourceError(f"file not found: {self.shown}", permanent=True)
            if not os.access(path, os.R_OK):
                raise SourceError(f"file not readable (permission denied): {self.shown}", permanent=True)
        cap = self._capture()
        if not cap.isOpened():
            cap.release()
            raise SourceError(self._open_failure(), permanent=self.kind is SourceKind.FILE)
        self._cap = cap
        self._opened_at = time.monotonic()
        self._frames = float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        self._fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._index = 0
        self._last_media_time = 0.0
        if self.kind is SourceKind.FILE:
            self._length = declared_length(self.target)

    def _capture(self) -> cv2.VideoCapture:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            self.open_timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            self.read_timeout_ms,
        ]
        # Automatic: one thread for a live stream, since FFmpeg's frame threads hold each
        # picture back by one frame per extra thread (15 frames, 0.6 s at 25 fps, with 16);
        # FFmpeg's choice (one per core) for a file, which has no such deadline.
        threads = self.decode_threads or (1 if self.kind is SourceKind.NETWORK else 0)
        if threads:
            params += [cv2.CAP_PROP_N_THREADS, threads]
        if self.kind is SourceKind.WEBCAM:
            index = int(self.target) if self.target.isdigit() else int(self.target.removeprefix("/dev/video"))
            return cv2.VideoCapture(index, cv2.CAP_ANY)
        return cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)

    def _open_failure(self) -> str:
        if self.kind is SourceKind.FILE:
            return f"cannot decode {self.shown}: not a video container or codec FFmpeg can read"
        if self.kind is SourceKind.WEBCAM:
            return f"cannot open webcam {self.shown}: no such device, busy, or no permission"
        return (
            f"cannot open stream {self.shown}: unreachable, refused, timed out after "
            f"{self.open_timeout_ms / 1000:g}s, or not a stream FFmpeg understands"
        )

    def seek(self, media_time: float) -> None:
        """Go to the picture at ``media_time`` (files; FFmpeg decodes on from the keyframe
        before it, so the next grab is that picture, not the keyframe)."""
        assert self._cap is not None, "open() first"
        if self.kind is SourceKind.FILE and media_time > 0:
            self._cap.set(cv2.CAP_PROP_POS_MSEC, media_time * 1000.0)
            self._index = round(media_time * self._fps) if self._fps > 0 else 0
            self._last_media_time = media_time

    def grab(self, take: FrameFilter) -> Grabbed | None:
        """Grab the next picture; None when the sampler skips it (not decoded to BGR)."""
        assert self._cap is not None, "open() first"
        if not self._cap.grab():
            if self.kind is SourceKind.FILE:
                raise EndOfSource
            raise SourceError(f"stream {self.shown} stopped delivering frames", permanent=False)
        self._index += 1
        media_time = self._last_media_time = self._media_time()
        if not take(media_time):
            return None
        ok, image = self._cap.retrieve()
        return Grabbed(image if ok and image is not None and image.size else None, media_time)

    def _media_time(self) -> float:
        if self.kind is not SourceKind.FILE:
            return time.monotonic() - self._opened_at
        assert self._cap is not None
        msec = float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
        if msec > 0 or self._index == 1:
            return msec / 1000.0
        # Containers without timestamps: count frames at the declared rate.
        return (self._index - 1) / self._fps if self._fps > 0 else 0.0

    def progress(self) -> float:
        if self.kind is not SourceKind.FILE or self._frames <= 0:
            return 0.0
        return min(1.0, self._index / self._frames)

    def shortfall(self) -> str | None:
        """A file that ended short of its declared length (see :class:`Length`)."""
        if self.kind is not SourceKind.FILE:
            return None
        end = self._last_media_time + (1 / self._fps if self._fps > 0 and self._index else 0.0)
        return self._length.shortfall(end, self._index, self._fps)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FolderSource:
    """Images of a folder in name order, at ``image_fps`` pictures per second of media time."""

    kind = SourceKind.FOLDER

    def __init__(self, folder: Path, image_fps: float) -> None:
        self.folder = folder
        self.image_fps = image_fps
        self._files: list[Path] = []
        self._index = 0

    def open(self) -> None:
        try:
            files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as exc:
            raise SourceError(
                f"cannot list image folder {self.folder}: {exc.strerror}", permanent=True
            ) from None
        if not files:
            raise SourceError(
                f"image folder {self.folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})",
                permanent=True,
            )
        self._files = files
        self._index = 0

    def seek(self, media_time: float) -> None:
        self._index = min(len(self._files), max(0, round(media_time * self.image_fps)))

    def grab(self, take: FrameFilter) -> Grabbed | None:
        if self._index >= len(self._files):
            raise EndOfSource
        path = self._files[self._index]
        media_time = self._index / self.image_fps
        self._index += 1
        if not take(media_time):
            return None
        return Grabbed(cv2.imread(str(path), cv2.IMREAD_COLOR), media_time)

    def progress(self) -> float:
        return self._index / len(self._files) if self._files else 0.0

    def close(self) -> None:
        self._files = []
