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
        self.port = await start_site(
            self._runner,
            self.host,
            self.port,
            setting="http.port",
            what="health and metrics",
            in_use="(another camsight service?); set http.port or CAMSIGHT_HTTP__PORT",
        )

    async def stop(self) -> None:
        await self._runner.cleanup()


async def start_site(
    runner: web.AppRunner, host: str, port: int, *, setting: str, what: str, in_use: str
) -> int:
    """Set ``runner`` up and serve it on host:port; returns the bound port (``port=0`` picks one).

    A port that cannot be bound is a :class:`ConfigError` of one line naming ``setting``,
    ``in_use`` saying what to do when another process holds it.
    """
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno != errno.EADDRINUSE:
            raise ConfigError(
                f"{setting}: cannot serve {what} on {host}:{port}: {exc.strerror or exc}"
            ) from None
        raise ConfigError(f"{setting}: port {port} is already in use {in_use}") from None
    return int(runner.addresses[0][1]) if port == 0 else port
