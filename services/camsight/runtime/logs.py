"""Structured logging: one JSON object per line (or readable text on a terminal).

Fields passed with ``extra={...}`` become keys of the JSON object, so
``log.info("camera started", extra={"camera": "lobby"})`` is searchable by
camera in any log pipeline. The text format prints the same fields after the
message (``camera=lobby``): a refusal without its method, or "created stream"
without the stream's name, would say nothing to the person reading it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from camsight.config import LogSettings

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def fields(record: logging.LogRecord) -> dict[str, object]:
    """The ``extra={...}`` fields of ``record``."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extra = " ".join(f"{key}={_text(value)}" for key, value in fields(record).items())
        return f"{line} {extra}" if extra else line


def _text(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text


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
        entry.update(fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(cfg: LogSettings, service: str = "camsight") -> None:
    """Configure the root logger once for the process (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    if cfg.format == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.level)
    # nats-py logs every reconnect attempt at error level; our callbacks say it once.
    logging.getLogger("nats.aio.client").setLevel(logging.CRITICAL)
