"""Run services: connect, declare or check the topology, start, loop, drain on a signal, exit.

The topology is declared or checked again after every loss of the process's NATS
connection, and the process is not ready until that is done: a restarted nats-server
has lost its memory streams (FRAMES), and services that went on as if they were there
would publish into nothing (decision 0083).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from camsight.bus import BUS_ERRORS, Bus, connect_with_retry
from camsight.bus.topology import ClusterFormingError, TopologyMissingError
from camsight.config import NatsSettings, Settings
from camsight.runtime.health import HealthServer
from camsight.runtime.ports import http_port
from camsight.runtime.service import Service, ServiceContext

log = logging.getLogger(__name__)

ServiceFactory = Callable[[ServiceContext], Service]
DRAIN_TIMEOUT_S = 30.0
TOPOLOGY_RETRY_S = 1.0
T = TypeVar("T")


class Runtime:
    """Hosts one or more services in one process with one health endpoint.

    The process connects to NATS with ``settings.nats`` (:attr:`ctx`'s bus):
    it declares or checks the topology on that connection, and services
    share it. ``connections`` gives a service (by its ``name``) a connection
    of its own with other NATS settings: embedded mode connects each service
    as its own NATS user (decision 0081).
    """

    def __init__(
        self,
        settings: Settings,
        factories: Sequence[ServiceFactory],
        name: str,
        *,
        connections: Mapping[str, NatsSettings] | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.ctx = ServiceContext(settings=settings)
        own = dict(connections or {})
        # A service with a connection of its own gets a context of its own
        # (same stop signal); the others share ctx and its connection.
        self._own: dict[str, ServiceContext] = {
            service: ServiceContext(settings.model_copy(update={"nats": nats}), stopping=self.ctx.stopping)
            for service, nats in own.items()
        }
        # Constructing validates each service's config before NATS is reached.
        self.services = [
            factory(self._own.get(getattr(factory, "name", ""), self.ctx)) for factory in factories
        ]
        unused = sorted(set(own) - {s.name for s in self.services if s.ctx is self._own.get(s.name)})
        if unused:
            raise ValueError(
                f"NATS connections given for services not hosted here (or whose factory "
                f"has no name attribute): {', '.join(unused)}"
            )
        self.health = HealthServer(self.readiness, settings.http.host, http_port(settings.http, name))
        self._phase = "connecting to NATS"
        self._started = False
        self._topology_at = 0  # connection losses before the topology was last declared or found
        self._follower: asyncio.Task[None] | None = None

    def _contexts(self) -> list[ServiceContext]:
        return [self.ctx, *self._own.values()]

    def readiness(self) -> tuple[bool, str]:
        if any(ctx._bus is not None and not ctx.bus.connected for ctx in self._contexts()):
            return False, "NATS connection lost, reconnecting"
        if not self._started:
            return False, self._phase
        if self.ctx._bus is not None and self.ctx.bus.link.losses != self._topology_at:
            return False, self._phase
        for service in self.services:
            ready, reason = service.readiness()
            if not ready:
                return False, f"{service.name}: {reason}"
        return True, ""

    def failures(self) -> list[str]:
        """Every service's :meth:`~camsight.runtime.service.Service.failures`, named."""
        return [f"{service.name}: {failure}" for service in self.services for failure in service.failures()]

    def abandoned(self) -> list[str]:
        """Every service's :meth:`~camsight.runtime.service.Service.abandoned`, named."""
        return [f"{service.name}: {line}" for service in self.services for line in service.abandoned()]

    def stop(self) -> None:
        """Ask every service to drain and return (signal-safe)."""
        self.ctx.stopping.set()

    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        await self.health.start()
        log.info("%s starting", self.name, extra={"http_port": self.health.port})
        code = 0
        try:
            if await self._prepare():
                code = await self._run_services()
        finally:
            if self._follower is not None:
                self._follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._follower
            for service in self.services:
                try:
                    await service.close()
                except Exception:
                    log.exception("%s: close failed", service.name)
            for ctx in self._contexts():
                if ctx._bus is not None:
                    await ctx.bus.close()
            await self.health.stop()
            log.info("%s stopped", self.name)
        return code

    async def _prepare(self) -> bool:
        """Connect, then declare or wait for the topology; False when stopped meanwhile."""
        bus = await self._until_stopped(self._connect(self.settings.nats, self.name))
        if bus is None:
            return False
        self.ctx.attach(bus)
        losses = bus.link.losses
        if self.settings.nats.declare_topology:
            self._phase = "declaring the topology"
            await bus.ensure_topology()
        elif await self._until_stopped(self._wait_for_topology(bus)) is None:
            return False
        self._topology_at = losses
        self._follower = asyncio.create_task(self._follow_topology(bus), name=f"{self.name}-topology")
        for service, ctx in self._own.items():
            self._phase = f"connecting {service} to NATS"
            own = await self._until_stopped(self._connect(ctx.settings.nats, f"{self.name}-{service}"))
            if own is None:
                return False
            ctx.attach(own)
        self._phase = "starting"
        return True

    async def _connect(self, nats: NatsSettings, name: str) -> Bus:
        return await connect_with_retry(nats, self.settings.streams, name=f"camsight-{name}")

    async def _wait_for_topology(self, bus: Bus) -> bool:
        """Check the topology until it exists; the reason is the not-ready reason meanwhile."""
        while True:
            try:
                await bus.check_topology()
                return True
            except (TopologyMissingError, *BUS_ERRORS) as exc:
                self._waiting(f"waiting for the topology: {exc or 'NATS did not answer'}")
            await asyncio.sleep(TOPOLOGY_RETRY_S)

    def _waiting(self, reason: str) -> None:
        """Make ``reason`` the not-ready reason, logged once when it changes."""
        if self._phase != reason:
            log.warning("%s", reason)
        self._phase = reason

    async def _follow_topology(self, bus: Bus) -> None:
        """After each loss of the connection, declare or check the topology again once it is
        back; :meth:`readiness` says not ready until then.

        A nats-server restarted without a cluster keeps its file streams but not its memory
        ones: FRAMES comes back only when the topology step (or this process, when it
        declares the topology) declares it again, and until it does no frame can be stored.
        """
        while True:
            await bus.link.wait_lost(self._topology_at)
            losses = bus.link.losses
            self._phase = "NATS connection lost: checking the topology once reconnected"
            await bus.link.wait_up()
            if self.settings.nats.declare_topology:
                await self._declare_again(bus)
            else:
                await self._wait_for_topology(bus)
            log.info("the topology is there again after the NATS connection was lost")
            self._topology_at = losses

    async def _declare_again(self, bus: Bus) -> None:
        """Declare the topology until it works (the server may still be coming up)."""
        while True:
            try:
                await bus.ensure_topology()
                return
            except (ClusterFormingError, *BUS_ERRORS) as exc:
                self._waiting(f"declaring the topology again: {exc or type(exc).__name__}")
            await asyncio.sleep(TOPOLOGY_RETRY_S)

    async def _until_stopped(self, work: Awaitable[T]) -> T | None:
        """Await ``work``, or cancel it and return None once asked to stop."""
        doing: asyncio.Future[T] = asyncio.ensure_future(work)
        stopping: asyncio.Future[Any] = asyncio.create_task(self.ctx.stopping.wait())
        done, _ = await asyncio.wait({doing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if doing in done:
            return doing.result()
        doing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await doing
        return None

    async def _run_services(self) -> int:
        for service in self.services:
            # A start may wait on a plugin (an analyzer's load()) that never returns: a stop
            # meanwhile must still stop the process.
            if await self._until_stopped(_started(service)) is None:
                return 0
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


async def _started(service: Service) -> bool:
    await service.start()
    return True


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
