"""QueryService: index EVENTS, serve the gRPC API, keep the index within retention.

Each replica owns a full index and its own durable consumer, named after the
instance and the index's generation (a random id written into a new index
file). A replica that loses its file therefore gets a fresh consumer that
replays the whole stream; consumers of lost files expire after
``consumer_inactive_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

from camsight.config import service_section
from camsight.query.auth import TokenAuth
from camsight.query.console.server import ConsoleServer
from camsight.query.index import EventIndex
from camsight.query.ingest import Ingestor, LiveHub
from camsight.query.server import GrpcServer, build_server
from camsight.query.settings import QuerySettings, replica_name
from camsight.runtime import Service, ServiceContext

log = logging.getLogger(__name__)

GRACE_S = 5.0


class QueryService(Service):
    name = "query"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.cfg = service_section(ctx.settings, "query", QuerySettings)
        self.index: EventIndex | None = None
        self.grpc: GrpcServer | None = None
        self.hub = LiveHub()
        self.ingestor: Ingestor | None = None
        self.console: ConsoleServer | None = None

    @property
    def port(self) -> int:
        """The bound gRPC port (useful with port 0)."""
        if self.grpc is None:
            raise RuntimeError("the query service is not started")
        return self.grpc.port

    async def start(self) -> None:
        index = await asyncio.to_thread(EventIndex, self.cfg.index_file(self.ctx.settings))
        self.index = index
        generation = await asyncio.to_thread(index.get_meta, "generation")
        if generation is None:
            generation = secrets.token_hex(4)
            await asyncio.to_thread(index.set_meta, "generation", generation)
        durable = f"query-{replica_name(self.ctx.settings.instance)}-{generation}"
        self.ingestor = Ingestor(self.ctx.bus, index, self.hub, durable, self.cfg)
        await self.ingestor.worker.subscribe()
        self.grpc = build_server(self.cfg, index, self.hub, self.ctx.bus)
        await self.grpc.server.start()
        await self.grpc.set_serving(True)
        log.info("query serving gRPC", extra={"port": self.grpc.port, "consumer": durable})
        if self.cfg.console.enabled:
            self.console = ConsoleServer(
                self.cfg.console, TokenAuth(self.cfg.tokens), self.local_target, self.ctx.bus
            )
            await self.console.start()
            log.info("query serving the console", extra={"url": self.console.url})
        self.set_ready(True)

    async def run(self) -> None:
        assert self.ingestor is not None and self.grpc is not None
        ingest = asyncio.create_task(self.ingestor.run(), name="query-ingest")
        retention = asyncio.create_task(self._retention(), name="query-retention")
        stopping = asyncio.create_task(self.ctx.stopping.wait())
        try:
            await asyncio.wait({ingest, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.set_ready(False, "stopping")
            if self.console is not None:
                await self.console.stop()
            await self.grpc.set_serving(False)
            await self.ingestor.stop()
            stopping.cancel()
            retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retention
            await self.grpc.server.stop(GRACE_S)
        await ingest  # drained (re-raises if ingestion failed)

    @property
    def local_target(self) -> str:
        """``host:port`` where a client on this machine reaches the gRPC server: the console
        (as a client, with the user's token), and the address ``camsight run`` prints."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(self.cfg.host, self.cfg.host)
        return f"{host}:{self.port}"

    async def _retention(self) -> None:
        """Delete what the stream has dropped too, now and every interval."""
        assert self.index is not None
        keep_s = self.cfg.retention_s(self.ctx.settings)
        while True:
            cutoff_ns = int((time.time() - keep_s) * 1e9)
            deleted = await asyncio.to_thread(self.index.delete_older_than, cutoff_ns)
            if deleted:
                log.info("retention removed %d events", deleted)
            await asyncio.to_thread(self.index.optimize)
            await asyncio.sleep(self.cfg.retention_interval_s)

    async def close(self) -> None:
        if self.console is not None:
            await self.console.stop()
        if self.grpc is not None:
            await self.grpc.server.stop(0)
        if self.index is not None:
            self.index.close()
