"""The base class of every service, and what the runtime hands it."""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from typing import ClassVar

from camsight.bus import Bus
from camsight.config import Settings


@dataclass
class ServiceContext:
    """What a service gets from the runtime: settings, the bus, a stop signal.

    Services are constructed before NATS is reached (so a bad config fails
    fast); :attr:`bus` is usable from :meth:`Service.start` on.
    """

    settings: Settings
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _bus: Bus | None = None

    @property
    def bus(self) -> Bus:
        if self._bus is None:
            raise RuntimeError("the bus is not connected yet: use it from start() on")
        return self._bus

    def attach(self, bus: Bus) -> None:
        self._bus = bus


class Service(abc.ABC):
    """A camsight service: thin by design (config in, a loop, metrics out).

    Life cycle, driven by :func:`camsight.runtime.serve`:

    1. ``__init__(ctx)``: read and validate the service's own settings; raise
       :class:`camsight.config.ConfigError` for bad ones (exit code 2).
    2. :meth:`start`: declare consumers, load models. May take long; the
       service is not ready meanwhile.
    3. :meth:`run`: the loop; returns once ``ctx.stopping`` is set and the
       work in hand is finished (drained).
    4. :meth:`close`: release resources; called even when start failed.
    """

    name: ClassVar[str]

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._ready = False
        self._not_ready_reason = "starting"

    async def start(self) -> None:
        """Prepare everything :meth:`run` needs. Default: nothing."""

    @abc.abstractmethod
    async def run(self) -> None:
        """Do the work until ``self.ctx.stopping`` is set, then drain and return."""

    async def close(self) -> None:
        """Release resources. Default: nothing."""

    def set_ready(self, ready: bool, reason: str = "") -> None:
        self._ready = ready
        self._not_ready_reason = "" if ready else (reason or "not ready")

    def readiness(self) -> tuple[bool, str]:
        """(ready, reason when not): /readyz answers 503 with the reason."""
        return self._ready, self._not_ready_reason

    def failures(self) -> list[str]:
        """What keeps the service from being ready that waiting will not mend (an analyzer
        that failed to load). A cluster keeps such a pod up and not ready, for an operator
        to see; ``camsight run`` stops on it at once instead of waiting. Default: none."""
        return []

    def abandoned(self) -> list[str]:
        """What the service stopped without, once stopped: work that did not end when asked
        (an analyzer call that never returned), one line each, for the one who stopped it.
        Default: none."""
        return []
