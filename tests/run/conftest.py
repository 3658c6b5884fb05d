"""What the end-to-end tests of ``camsight run`` and ``camsight demo`` share.

They run the real command in a child process, as a user does: its own
Prometheus registry, logging and signal handling, nothing left behind in
the test process.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
from helpers import camsight_process


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli("run", ...)`` runs ``python -m camsight run ...`` in ``tmp_path``."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return camsight_process(tmp_path, *args, timeout=timeout)

    return run


def check_annotated(video: Path, source: Path) -> None:
    """``video`` is an H.264 mp4 browsers play (avc1 sample entry) with every frame of ``source``."""
    assert b"avc1" in video.read_bytes(), f"{video} has no avc1 (H.264) track"
    cap = cv2.VideoCapture(str(video))
    try:
        assert cap.isOpened(), f"{video} does not open"
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode().lower()
        assert fourcc in ("h264", "avc1"), f"{video} is {fourcc!r}, not H.264"
        decoded = 0
        while cap.grab():
            decoded += 1
    finally:
        cap.release()
    cap = cv2.VideoCapture(str(source))
    expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert decoded == expected > 0, f"{video}: {decoded} frames, {source.name} has {expected}"


@pytest.fixture
def annotated() -> Callable[[Path, Path], None]:
    """``annotated(video, source)`` checks an annotated video against its source."""
    return check_annotated
