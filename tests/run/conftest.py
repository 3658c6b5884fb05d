"""What the end-to-end tests of ``camsight run`` and ``camsight demo`` share.

They run the real command in a child process, as a user does: its own
Prometheus registry, logging and signal handling, nothing left behind in
the test process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
from helpers import camsight_process

Cli = Callable[..., subprocess.CompletedProcess[str]]
OFFLINE_MAIN = Path(__file__).resolve().parents[1] / "offline_main.py"


def runner(cwd: Path, command: list[str], env: dict[str, str] | None = None) -> Cli:
    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout,
            env=None if env is None else {**os.environ, **env},
        )

    return run


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """``cli("run", ...)`` runs ``python -m camsight run ...`` in ``tmp_path``."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return camsight_process(tmp_path, *args, timeout=timeout)

    return run


@pytest.fixture
def offline_cli(tmp_path: Path) -> Cli:
    """``cli`` with the network blocked (loopback only) and an empty torch cache, ``tmp_path/torch``.

    Seed the cache before calling it; hosts it tried to reach are listed in ``tmp_path/network.log``.
    """
    env = {
        "TORCH_HOME": str(tmp_path / "torch"),
        "CAMSIGHT_TEST_NETWORK_LOG": str(tmp_path / "network.log"),
        "CAMSIGHT_NO_DOWNLOAD": "",  # the download is tried, and blocked here
    }
    return runner(tmp_path, [sys.executable, str(OFFLINE_MAIN)], env)


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
