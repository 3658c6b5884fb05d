"""Default ports, one place: every service its own health/metrics port, so all of them
(and nats-server) can run as separate processes on one host without a port setting.

The table in docs/deploy.md ("Ports") lists the same numbers; a test checks it.
"""

from __future__ import annotations

from camsight.config import HttpSettings

HTTP_PORTS: dict[str, int] = {
    "decoder": 8081,
    "detector": 8082,
    "face": 8083,
    "behavior": 8084,
    "query": 8085,
    "controller": 8086,
}
"""``/healthz``, ``/readyz`` and ``/metrics`` of ``camsight serve <service>``."""
SHARED_HTTP_PORT = 8080
"""The health port of a process that hosts several services, or one not in :data:`HTTP_PORTS`."""
GRPC_PORT = 50051
"""The query service's gRPC API (``services.query.port``)."""
NATS_PORT = 4222
NATS_MONITOR_PORT = 8222


def http_port(settings: HttpSettings, process: str) -> int:
    """The health/metrics port of process ``process``: ``http.port`` when set, else its default."""
    if settings.port is not None:
        return settings.port
    return HTTP_PORTS.get(process, SHARED_HTTP_PORT)
