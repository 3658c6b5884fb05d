"""Which behavior replica owns which camera.

A camera's owner is ``crc32(camera id) % replicas``: stable across
processes and restarts (unlike Python's salted ``hash``), needs no
coordination, and changes only for cameras whose owner index changes when
the replica count does. Each replica consumes through its own durable
consumer whose filter subjects are ``detections.*.<camera>`` for the cameras
it owns, so a camera's results reach exactly one replica, in stream order.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from camsight.bus import subjects


def owner(camera_id: str, replicas: int) -> int:
    return zlib.crc32(camera_id.encode()) % replicas


def filter_subjects(cameras: Iterable[str]) -> list[str]:
    """One filter per owned camera, across every analyzer: ``detections.*.<camera>``."""
    return [subjects.detections_of_camera(c) for c in sorted(cameras)]


def durable(index: int) -> str:
    return f"behavior-{index}"
