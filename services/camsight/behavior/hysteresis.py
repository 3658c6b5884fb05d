"""A state that changes only after holding the new value K consecutive frames.

This is what keeps a box jittering across a zone edge or a counting line
from producing extra events: one frame on the other side is not a change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")
Obs = TypeVar("Obs")


@dataclass
class Change(Generic[V, Obs]):
    old: V | None
    new: V
    since: Obs
    """The observation (frame) where the new value was first seen."""


class Debounced(Generic[V, Obs]):
    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.state: V | None = None
        self.since: Obs | None = None
        self._pending: V | None = None
        self._run = 0
        self._run_start: Obs | None = None

    def observe(self, value: V | None, obs: Obs) -> Change[V, Obs] | None:
        """Feed one frame's value (None = undecided, breaks a pending run)."""
        if value is None or value == self.state:
            self._pending, self._run, self._run_start = None, 0, None
            return None
        if value != self._pending:
            self._pending, self._run, self._run_start = value, 0, obs
        self._run += 1
        if self._run < self.frames:
            return None
        assert self._run_start is not None
        change = Change(self.state, value, self._run_start)
        self.state, self.since = value, self._run_start
        self._pending, self._run, self._run_start = None, 0, None
        return change
