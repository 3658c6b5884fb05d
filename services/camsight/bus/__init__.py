"""The bus: every NATS and JetStream detail of camsight lives in this package.

Services talk to :class:`Bus` (publish protobuf messages, KV and object
stores) and :class:`PullWorker` (consume a stream in batches, ack only after
the handler's output is published, dead-letter what cannot be handled).
Subjects and stream names are in :mod:`camsight.bus.subjects`; the streams,
consumers and buckets are declared in :mod:`camsight.bus.topology`.
"""

from camsight.bus.connection import BUS_ERRORS, Bus, connect, connect_with_retry
from camsight.bus.worker import MalformedMessageError, Pipeline, PullWorker, WorkerConfig, each

__all__ = [
    "BUS_ERRORS",
    "Bus",
    "MalformedMessageError",
    "Pipeline",
    "PullWorker",
    "WorkerConfig",
    "connect",
    "connect_with_retry",
    "each",
]
