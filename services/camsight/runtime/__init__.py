"""The service runtime: what every camsight service shares.

A service is a :class:`Service` subclass: config in, a loop, metrics out.
:func:`serve` connects to NATS (retrying while it is unreachable), declares
the topology (or, with ``nats.declare_topology: false``, waits not ready until
it exists), runs one or more services, serves /healthz, /readyz and /metrics,
and shuts everything down gracefully on SIGTERM or SIGINT.
"""

from camsight.runtime.logs import setup_logging
from camsight.runtime.serve import serve
from camsight.runtime.service import Service, ServiceContext

__all__ = ["Service", "ServiceContext", "serve", "setup_logging"]
