"""The console's HTTP server, started and stopped by the query service."""

from __future__ import annotations

from aiohttp import web

from camsight.bus import Bus
from camsight.query.auth import TokenAuth
from camsight.query.console.api import Api
from camsight.query.console.app import Console, make_app
from camsight.query.console.live import LiveFeeds
from camsight.query.console.session import Sessions
from camsight.query.console.views import ROUTES
from camsight.query.settings import ConsoleSettings
from camsight.runtime.health import start_site

# Streams (SSE, MJPEG) end when ``Console.closing`` is set; this bounds the wait for them.
SHUTDOWN_TIMEOUT_S = 2.0


class ConsoleServer:
    """Serves the console on host:port (``port=0`` picks a free port), as a client of ``grpc_target``."""

    def __init__(self, cfg: ConsoleSettings, auth: TokenAuth, grpc_target: str, bus: Bus) -> None:
        self.console = Console(Api(grpc_target), Sessions(auth, cfg.read_only), bus, LiveFeeds(bus))
        # handler_cancellation: a browser that leaves a live page cancels its handler, which
        # closes the gRPC tail behind it (else every visit would leave a stream open).
        self._runner = web.AppRunner(
            make_app(self.console, ROUTES),
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            handler_cancellation=True,
        )
        self.host = cfg.host
        self.port = cfg.port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        """Bind and serve; a port that cannot be bound is a ConfigError naming the setting."""
        self.port = await start_site(
            self._runner,
            self.host,
            self.port,
            setting="services.query.console.port",
            what="the console",
            in_use="(another query service?); set services.query.console.port",
        )

    async def stop(self) -> None:
        """End streams, stop serving, close the channel; a second call does nothing."""
        if self.console.closing.is_set():
            return
        self.console.closing.set()
        await self.console.feeds.close()
        await self._runner.cleanup()
        await self.console.api.close()
