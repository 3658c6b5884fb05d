"""The source plugin API: a URI scheme a plugin teaches the decoder to open.

A camera whose ``source`` is ``<scheme>://...`` for a scheme a plugin
declares is read through that plugin's :class:`SourceReader`: the decoder
builds one per camera (and again after a failure), calls :meth:`open`, then
:meth:`read` from the camera's own thread until it returns None, and
samples, resizes, encodes and publishes the pictures like any camera's. A
plugin source is a recording: its pictures are paced losslessly (every
picture reaches the analyzers), ``read`` returning None ends the camera like
the end of a file, and its media times place events in it.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from camsight.analyzers.api import Image


class SourceUnavailable(Exception):
    """The source cannot be opened or read: one line naming the problem, no credentials.
    ``permanent`` when retrying cannot help (a missing recording); else the decoder retries."""

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


class SourceReader(abc.ABC):
    """Pictures of one camera from a URI scheme: declare ``scheme``; implement :meth:`open` and
    :meth:`read`. Blocking is fine: the decoder calls these from the camera's own thread."""

    scheme: ClassVar[str]

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @abc.abstractmethod
    def open(self) -> None:
        """Open or connect; raise :class:`SourceUnavailable` naming what is wrong."""

    @abc.abstractmethod
    def read(self) -> tuple[Image, float] | None:
        """The next picture (BGR ``uint8``, OpenCV's layout) and its media time in seconds
        (increasing), or None at the end."""

    def close(self) -> None:
        """Release what :meth:`open` took; called once, also after a failure."""
