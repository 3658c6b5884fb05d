"""A thread that handles items in order while the thread that puts them goes on.

The decoder's encode stage (decision 0014): a lossless camera's decode
thread puts each decoded picture here and decodes the next one while this
thread resizes, JPEG-encodes and hands over the previous ones, as a
GStreamer ``queue`` element splits a pipeline into two threads. Decoding
and encoding then overlap on two cores instead of taking turns on one.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
_END = object()


class StageFailed(RuntimeError):
    """The stage's thread died on an unexpected error; the putter must give up too."""


class ThreadStage(Generic[T]):
    """Calls ``handle`` on each item put, in the order put, on a thread of its own.

    ``put`` blocks while ``capacity`` items wait: raw pictures are large (25
    MB at 4K), so memory stays bounded. Once ``stop`` is set, waiting items
    are dropped without being handled, so :meth:`close` never waits for work
    nobody wants any more.
    """

    def __init__(self, handle: Callable[[T], None], capacity: int, stop: threading.Event, name: str) -> None:
        self._handle = handle
        self._stop = stop
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        """Queue ``item``; blocks while the stage is full (gives up once stopping)."""
        while not self._stop.is_set():
            self._raise_failure()
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Handle what is queued (unless stopping), then end the thread and wait for it."""
        self._queue.put(_END)  # room comes: the thread takes items even when it handles none
        self._thread.join()
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise StageFailed(f"{self._thread.name} failed: {self._failure!r}") from self._failure

    def _run(self) -> None:
        while (item := self._queue.get()) is not _END:
            if self._failure is not None or self._stop.is_set():
                continue
            try:
                self._handle(item)  # type: ignore[arg-type]  # only T is put besides _END
            except Exception as exc:  # reported to the putter; the thread drains until close()
                log.exception("%s failed", self._thread.name)
                self._failure = exc
