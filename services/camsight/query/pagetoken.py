"""Opaque page tokens: a keyset cursor bound to the query that produced it.

A token is base64url(JSON) holding the last row's position and a digest of
the request's filter and order. Reusing it with another filter would skip or
repeat rows silently, so that is refused (INVALID_ARGUMENT) instead. Tokens
are not secret: they only point into results the caller may read anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any


class PageTokenError(ValueError):
    """The token is malformed or belongs to another query."""


def binding(*parts: str) -> str:
    """Digest of what a token is valid for (normalised filter, order, ...)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def encode(position: list[Any], bound_to: str) -> str:
    raw = json.dumps({"p": position, "b": bound_to}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, bound_to: str) -> list[Any]:
    """The position in ``token``; raises :class:`PageTokenError` when unusable."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        position, bound = data["p"], data["b"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise PageTokenError("malformed page token") from None
    if not isinstance(position, list) or bound != bound_to:
        raise PageTokenError("page token belongs to another query (filter or order changed)")
    return position
