"""A state that changes only after the new value held for K sightings and T seconds.

This is what keeps a box jittering across a zone edge or a counting line
from producing extra events: a padded box that flickers to the other side
for a few frames is not a change. The count guards sparse, slow sources;
the time guards fast ones (two frames at 30 fps are 67 ms). Observations are
sightings only: a frame where the track was not seen neither extends nor
breaks a run, so a detector that misses every other frame still changes
state after the same media time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from camsight.behavior.model import Frame

V = TypeVar("V")


@dataclass
class Change(Generic[V]):
    old: V | None
    new: V
    since: Frame
    """The frame where the new value was first seen: the change's time."""


class Debounced(Generic[V]):
    def __init__(self, frames: int, seconds: float = 0.0) -> None:
        self.frames = frames
        self.seconds = seconds
        self.state: V | None = None
        self.since: Frame | None = None
        self._pending: V | None = None
        self._run = 0
        self._run_start: Frame | None = None

    def observe(self, value: V | None, frame: Frame) -> Change[V] | None:
        """Feed one sighting's value (None = undecided, e.g. within the margin: breaks a pending run).

        The first value ever seen is established at once (a track that
        appears inside a zone is inside from its first sighting).
        """
        if value is None or value == self.state:
            self._pending, self._run, self._run_start = None, 0, None
            return None
        if value != self._pending:
            self._pending, self._run, self._run_start = value, 0, frame
        self._run += 1
        assert self._run_start is not None
        held = frame.t - self._run_start.t
        if self._run < self.frames or (self.state is not None and held < self.seconds):
            return None
        return self._commit()

    def settle(self) -> Change[V] | None:
        """The track ended: a pending value that held for the sightings count (not yet
        for the time, since the track is gone) is taken as the last state."""
        if self._pending is None or self._run < self.frames:
            return None
        return self._commit()

    def _commit(self) -> Change[V]:
        assert self._pending is not None and self._run_start is not None
        change = Change(self.state, self._pending, self._run_start)
        self.state, self.since = self._pending, self._run_start
        self._pending, self._run, self._run_start = None, 0, None
        return change
