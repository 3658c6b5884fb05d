"""Validation of the ids that become NATS subject tokens and KV keys.

Camera, zone, line, rule and identity ids are embedded in subjects such as
``frames.<camera>``: a dot, a wildcard or whitespace in one would silently
change which messages a subscriber sees. Every id that crosses a boundary
(config, gRPC, KV) is checked here, so the rule lives in one place.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ID_RULE = "1 to 64 letters, digits, '-' or '_'"


class InvalidIdError(ValueError):
    """An id that cannot be used as a subject token or key."""


def validate_id(value: str, what: str = "id") -> str:
    """Return ``value`` when it is a valid id, else raise naming ``what``."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidIdError(f"invalid {what} {shown(value)}: must be {ID_RULE}")
    return value


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)``, a long string cut to its first ``limit`` characters and its length.

    For echoing input in an error message: the whole of a 10,000-character id would
    swell every log line, and over gRPC it overflows the status trailer (8 KiB by
    default), so the client gets RESOURCE_EXHAUSTED instead of the error.
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    return repr(value)


def redact_uri(uri: str) -> str:
    """Hide the password (and token-like user) of a URI for logs and status.

    ``rtsp://admin:secret@10.0.0.5/stream`` becomes ``rtsp://admin:***@10.0.0.5/stream``.
    Anything that does not parse as a URL with credentials is returned as is.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable uri>"
    if not parts.netloc or "@" not in parts.netloc:
        return uri
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, _password = userinfo.partition(":")
    masked = f"{user}:***" if sep else "***"
    return urlunsplit(parts._replace(netloc=f"{masked}@{hostport}"))
