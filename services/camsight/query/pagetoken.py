"""Opaque page tokens: a keyset cursor bound to the query that produced it.

A token is base64url(JSON) holding the last row's position and a digest of
the request's filter and order. Reusing it with another filter would skip or
repeat rows silently, so that is refused (INVALID_ARGUMENT) instead. Tokens
are not secret: they only point into results the caller may read anyway, so
a client can forge one; whatever it holds, decoding either gives a position of
the expected shape or raises :class:`PageTokenError` with a fixed message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from camsight.query.filters import SQL_INTEGER

MALFORMED = "malformed page token"


class PageTokenError(ValueError):
    """The token is malformed or belongs to another query."""


def binding(*parts: str) -> str:
    """Digest of what a token is valid for (normalised filter, order, ...)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def encode(position: list[Any], bound_to: str) -> str:
    raw = json.dumps({"p": position, "b": bound_to}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, bound_to: str, kinds: tuple[type[int] | type[str], ...]) -> list[Any]:
    """The position in ``token``: one value of each of ``kinds``, in order.

    An int must fit :data:`SQL_INTEGER`, as positions are bound as SQL parameters.
    Raises :class:`PageTokenError` when the token is unusable.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        position, bound = data["p"], data["b"]
    # RecursionError: JSON nested thousands deep.
    except (binascii.Error, ValueError, TypeError, KeyError, RecursionError):
        raise PageTokenError(MALFORMED) from None
    if not (
        isinstance(position, list)
        and len(position) == len(kinds)
        and all(_fits(value, kind) for value, kind in zip(position, kinds, strict=True))
    ):
        raise PageTokenError(MALFORMED)
    if bound != bound_to:
        raise PageTokenError("page token belongs to another query (filter or order changed)")
    return position


def _fits(value: Any, kind: type[int] | type[str]) -> bool:
    """Whether ``value`` is a ``kind`` (exactly: JSON's true is no int here) that SQL can bind."""
    return type(value) is kind and (kind is str or value in SQL_INTEGER)
