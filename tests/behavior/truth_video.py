"""Videos of walking and standing figures whose truth is known, for end-to-end tests.

Each figure is a textured rectangle (roughly a person at 320x240) on a
static background with sensor noise; its position at every frame is given
by a path of keyframes, so tests know where each object is and when it
stops. Used with the real decoder and the motion analyzer (MOG2), these
scenes reproduce what a background subtractor does to a person who stops:
it absorbs them, and detections stop until they move again.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

W, H, FPS = 320, 240, 10
FIGURE = (24, 56)  # width, height in pixels


@dataclass(frozen=True)
class Figure:
    """Keyframes ``(frame, x, y)`` of the figure's bottom centre (pixels); linear in between."""

    keys: Sequence[tuple[int, float, float]]
    shade: int = 220

    def at(self, frame: int) -> tuple[float, float] | None:
        keys = self.keys
        if frame < keys[0][0] or frame > keys[-1][0]:
            return None
        for (f0, x0, y0), (f1, x1, y1) in itertools.pairwise(keys):
            if f0 <= frame <= f1:
                k = (frame - f0) / (f1 - f0) if f1 > f0 else 0.0
                return x0 + k * (x1 - x0), y0 + k * (y1 - y0)
        return keys[-1][1], keys[-1][2]

    def box(self, frame: int) -> tuple[float, float, float, float] | None:
        """The figure's box at ``frame`` in normalised coordinates, or None when absent."""
        at = self.at(frame)
        if at is None:
            return None
        x, y = at
        w, h = FIGURE
        return (x - w / 2) / W, (y - h) / H, (x + w / 2) / W, y / H


def write(path: Path, figures: Sequence[Figure], frames: int, creation_time: str = "") -> Path:
    """Render the scene to an H.264 mp4 (with a ``creation_time`` tag when given)."""
    rng = np.random.default_rng(7)
    background = cv2.GaussianBlur(rng.integers(40, 90, (H, W, 3), dtype=np.uint8), (0, 0), 3)
    texture = rng.integers(0, 60, (FIGURE[1], FIGURE[0], 3), dtype=np.uint8)
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{W}x{H}", "-r", str(FPS), "-i", "-",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18",
    ]  # fmt: skip
    if creation_time:
        command += ["-metadata", f"creation_time={creation_time}"]
    writer = subprocess.Popen([*command, str(path)], stdin=subprocess.PIPE)
    assert writer.stdin is not None
    for frame in range(frames):
        image = background.copy()
        for figure in figures:
            at = figure.at(frame)
            if at is None:
                continue
            x, y = round(at[0]), round(at[1])
            x0, y0 = x - FIGURE[0] // 2, y - FIGURE[1]
            xs, ys = slice(max(x0, 0), min(x0 + FIGURE[0], W)), slice(max(y0, 0), min(y, H))
            if xs.stop <= xs.start or ys.stop <= ys.start:
                continue  # outside the picture
            patch = figure.shade - texture[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
            image[ys, xs] = patch.clip(0, 255)
        noise = rng.normal(0, 2.0, image.shape)
        writer.stdin.write((image + noise).clip(0, 255).astype(np.uint8).tobytes())
    writer.stdin.close()
    assert writer.wait() == 0, "ffmpeg failed to write the scene"
    return path
