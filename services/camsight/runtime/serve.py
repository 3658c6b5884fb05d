"""Run services: connect, declare, start, loop, drain on a signal, exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any

from camsight.bus import Bus, connect_with_retry
from camsight.config import Settings
from camsight.runtime.health import HealthServer
from camsight.runtime.service import Service, ServiceContext

log = logging.getLogger(__name__)

ServiceFactory = Callable[[ServiceContext], Service]
DRAIN_TIMEOUT_S = 30.0


class Runtime:
    """Hosts one or more services in one process with one health endpoint."""

    def __init__(self, settings: Settings, factories: Sequence[ServiceFactory], name: str) -> None:
        self.settings = settings
        self.name = name
        self.ctx = ServiceContext(settings=settings)
        # Constructing validates each service's config before NATS is reached.
        self.services = [factory(self.ctx) for factory in factories]
        self.health = HealthServer(self.readiness, settings.http.host, settings.http.port)
        self._started = False

    def readiness(self) -> tuple[bool, str]:
        if self.ctx._bus is None:
            return False, "connecting to NATS"
        if not self.ctx.bus.connected:
            return False, "NATS connection lost, reconnecting"
        if not self._started:
            return False, "starting"
        for service in self.services:
            ready, reason = service.readiness()
            if not ready:
                return False, f"{service.name}: {reason}"
        return True, ""

    def stop(self) -> None:
        """Ask every service to drain and return (signal-safe)."""
        self.ctx.stopping.set()

    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        await self.health.start()
        log.info("%s starting", self.name, extra={"http_port": self.health.port})
        code = 0
        try:
            bus = await self._connect()
            if bus is None:
                return 0
            self.ctx.attach(bus)
            await bus.ensure_topology()
            code = await self._run_services()
        finally:
            for service in self.services:
                try:
                    await service.close()
                except Exception:
                    log.exception("%s: close failed", service.name)
            if self.ctx._bus is not None:
                await self.ctx.bus.close()
            await self.health.stop()
            log.info("%s stopped", self.name)
        return code

    async def _connect(self) -> Bus | None:
        """Connect, giving up quietly if asked to stop meanwhile."""
        connecting = asyncio.create_task(
            connect_with_retry(self.settings.nats, self.settings.streams, name=f"camsight-{self.name}")
        )
        stopping = asyncio.create_task(self.ctx.stopping.wait())
        done, _ = await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if connecting in done:
            return connecting.result()
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        return None

    async def _run_services(self) -> int:
        for service in self.services:
            await service.start()
        self._started = True
        tasks: dict[asyncio.Task[Any], Service] = {
            asyncio.create_task(s.run(), name=s.name): s for s in self.services
        }
        code = 0
        pending: set[asyncio.Task[Any]] = set(tasks)
        stopping: asyncio.Task[Any] = asyncio.create_task(self.ctx.stopping.wait())
        while pending:
            done, pending = await asyncio.wait(pending | {stopping}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(stopping)
            for task in done - {stopping}:
                if task.cancelled():
                    continue
                if task.exception() is not None:
                    log.error("%s failed", tasks[task].name, exc_info=task.exception())
                    code = 1
                    self.stop()
            if stopping in done and pending:
                self._started = False
                _, late = await asyncio.wait(pending, timeout=DRAIN_TIMEOUT_S)
                for task in late:
                    log.warning("%s did not drain in %.0fs; cancelling", tasks[task].name, DRAIN_TIMEOUT_S)
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
                pending = set()
        stopping.cancel()
        return code


async def serve(settings: Settings, factories: Sequence[ServiceFactory], name: str) -> int:
    """Run services until SIGTERM or SIGINT; returns the exit code."""
    runtime = Runtime(settings, factories, name)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runtime.stop)
    try:
        return await runtime.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
