"""The HTTP endpoint every service serves: /healthz, /readyz, /metrics.

/healthz is liveness (the event loop answers); /readyz is readiness (NATS
connected and every service in the process ready), with the reason in the
body when not; /metrics is Prometheus' text format.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from camsight.config import ConfigError

Readiness = Callable[[], tuple[bool, str]]


def make_app(readiness: Readiness) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready, reason = readiness()
        body = {"status": "ready" if ready else "not ready", "reason": reason}
        return web.Response(
            status=200 if ready else 503, text=json.dumps(body), content_type="application/json"
        )

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)])
    return app


class HealthServer:
    """Runs :func:`make_app` on host:port; ``port=0`` picks a free port."""

    def __init__(self, readiness: Readiness, host: str, port: int) -> None:
        self._runner = web.AppRunner(make_app(readiness), access_log=None)
        self.host = host
        self.port = port

    async def start(self) -> None:
        """Bind and serve; a port in use is a :class:`ConfigError` naming the setting that moves it."""
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as exc:
            await self._runner.cleanup()
            if exc.errno != errno.EADDRINUSE:
                raise ConfigError(
                    f"http.port: cannot serve health and metrics on {self.host}:{self.port}: "
                    f"{exc.strerror or exc}"
                ) from None
            raise ConfigError(
                f"http.port: port {self.port} is already in use (another camsight service?); "
                "set http.port or CAMSIGHT_HTTP__PORT"
            ) from None
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        await self._runner.cleanup()
