"""Sliding windows of frames per camera, for clip analyzers (used by the host and the author kit).

A window holds the pictures as the analyzer takes them: BGR arrays in host
memory, or for ``inputs = "tensor"`` RGB ``uint8`` tensors on its device, so
a clip never goes back through the host (decision 0076). A full window costs
``window`` decoded frames per camera: 6.2 MB a frame at 1080p, 100 MB for
16 frames, 200 MB for 32 (docs/plugins.md).
"""

from __future__ import annotations

from collections import deque

from camsight.analyzers.api import Clip, FrameInfo, Image


class SlidingWindows:
    """Keeps the last ``window`` frames of each camera and says when a clip is due.

    A clip is due once the window is full and ``stride`` frames arrived
    since the previous one. A sequence number that goes back (the camera
    restarted) starts a fresh window, so a clip never mixes two runs.
    """

    def __init__(self, window: int, stride: int = 1) -> None:
        self.window = window
        self.stride = stride
        self._frames: dict[str, deque[tuple[Image, FrameInfo]]] = {}
        self._since: dict[str, int] = {}

    def push(self, image: Image, info: FrameInfo) -> Clip | None:
        """Add a frame; return the window ending at it when one is due."""
        frames = self._frames.get(info.camera_id)
        if frames is None or (frames and info.seq <= frames[-1][1].seq):
            frames = self._frames[info.camera_id] = deque(maxlen=self.window)
            self._since[info.camera_id] = 0
        frames.append((image, info))
        self._since[info.camera_id] += 1
        if len(frames) < self.window or self._since[info.camera_id] < self.stride:
            return None
        self._since[info.camera_id] = 0
        return Clip(info.camera_id, [img for img, _ in frames], [inf for _, inf in frames])

    def __contains__(self, camera_id: object) -> bool:
        """A window is held for ``camera_id``."""
        return camera_id in self._frames

    def end(self, camera_id: str) -> None:
        """The camera's source ended: forget its frames (a later run starts a fresh window)."""
        self._frames.pop(camera_id, None)
        self._since.pop(camera_id, None)
