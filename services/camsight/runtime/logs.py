"""Structured logging: one JSON object per line (or readable text on a terminal).

Fields passed with ``extra={...}`` become keys of the JSON object, so
``log.info("camera started", extra={"camera": "lobby"})`` is searchable by
camera in any log pipeline.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from camsight.config import LogSettings

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(cfg: LogSettings, service: str = "camsight") -> None:
    """Configure the root logger once for the process (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    if cfg.format == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.level)
    # nats-py logs every reconnect attempt at error level; our callbacks say it once.
    logging.getLogger("nats.aio.client").setLevel(logging.CRITICAL)
