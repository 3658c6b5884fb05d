"""Per-stream reorder buffer: results leave in frame order, late ones are dropped.

Analyzers batch and run replicas in parallel, so results of one camera can
arrive slightly out of order. The tracker needs them in order. A result
waits here until the frames before it arrived, at most ``window`` results
deep (then the gap is skipped) or until :meth:`ReorderBuffer.flush` (the
service calls it when a result waited too long in wall time).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Released(Generic[T]):
    """What one push let through, in frame order."""

    items: list[T] = field(default_factory=list)
    late: bool = False


class ReorderBuffer(Generic[T]):
    def __init__(self, window: int) -> None:
        self.window = window
        self.next_seq: int | None = None
        self._heap: list[tuple[int, int, T]] = []
        self._tiebreak = 0
        self.waiting_since: float | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, seq: int, item: T, now: float = 0.0) -> Released[T]:
        """Add the result of frame ``seq``; return what can now leave, in order.

        A result for a frame already passed (or already held) is late: it is
        not kept and ``late`` is set.
        """
        out: Released[T] = Released()
        if self.behind(seq) or self.holds(seq):
            out.late = True
            return out
        if self.next_seq is None and seq == 1:
            self.next_seq = 1
        self._tiebreak += 1
        heapq.heappush(self._heap, (seq, self._tiebreak, item))
        if self.waiting_since is None:
            self.waiting_since = now
        out.items.extend(self._drain())
        return out

    def holds(self, seq: int) -> bool:
        """The result of frame ``seq`` waits here (not processed yet)."""
        return any(s == seq for s, _, _ in self._heap)

    def behind(self, seq: int) -> bool:
        """Frame ``seq`` is before the frames already released."""
        return self.next_seq is not None and seq < self.next_seq

    def restart(self) -> list[T]:
        """The stream starts over (the camera restarted): release what is held, forget the position."""
        ready = self.flush()
        self.next_seq = None
        return ready

    def _drain(self) -> list[T]:
        ready: list[T] = []
        while self._heap:
            seq = self._heap[0][0]
            if seq == self.next_seq or len(self._heap) > self.window:
                ready.append(heapq.heappop(self._heap)[2])
                self.next_seq = seq + 1
            else:
                break
        self.waiting_since = self.waiting_since if self._heap else None
        return ready

    def flush(self) -> list[T]:
        """Release everything held, skipping gaps."""
        ready: list[T] = []
        while self._heap:
            seq, _, item = heapq.heappop(self._heap)
            ready.append(item)
            self.next_seq = seq + 1
        self.waiting_since = None
        return ready
