"""Revision-checked read-modify-write of one KV key: the one way the stores change an entry.

JetStream KV offers optimistic concurrency (write "at the revision I read");
a writer that lost the race reads again and re-applies its change, so two
writers never overwrite each other and a change is always made to what is
really stored. :func:`modify` is that loop, for create, update and delete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import nats.js.errors
from nats.js.kv import KeyValue

from camsight.retry import Backoff, retry_async

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 10
"""Reads and writes of one key before a writer gives up (each loss means another writer
changed the key meanwhile, so this is only reached under a storm of writes to one key)."""
CONFLICT_BACKOFF = Backoff(initial=0.01, maximum=0.25)
"""A lost race costs one round trip: retry at once, nearly, and spread colliding writers."""

# JSStreamWrongLastSequenceErrF and its constant form: the key changed since it was read.
# kv.update/create map them to KeyWrongLastSequenceError; kv.delete does not.
WRONG_LAST_SEQUENCE = (10071, 10164)


class ConflictError(RuntimeError):
    """The key kept changing under a write (concurrent writers); the caller may try again."""


class Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE: Final = Delete()
"""What a change returns to delete the entry (with the revision read: never a newer one)."""


@dataclass(frozen=True)
class Stored:
    """One entry as read: its value and the revision a write must name."""

    value: bytes
    revision: int


Change = Callable[[Stored | None], bytes | Delete | None]
"""The stored entry (None when absent) -> the new value, DELETE, or None to leave it as is.
Called again after each conflict, so it must derive everything from its argument."""


async def read(kv: KeyValue, key: str) -> Stored | None:
    """The entry, or None when there is none (never written, deleted or purged)."""
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None
    return Stored(entry.value or b"", int(entry.revision or 0))


async def modify(kv: KeyValue, key: str, change: Change, attempts: int = WRITE_ATTEMPTS) -> int:
    """Apply ``change`` to ``key`` at the revision read, reading again on a conflict.

    Returns the revision written (0 for a delete or no change). Raises
    :class:`ConflictError` after ``attempts`` lost races; the back-off between
    tries (with jitter) lets writers that collided spread out.
    """

    async def once() -> int:
        stored = await read(kv, key)
        new = change(stored)
        if new is None:
            return stored.revision if stored is not None else 0
        try:
            if isinstance(new, Delete):
                if stored is not None:
                    await kv.delete(key, last=stored.revision)
                return 0
            if stored is None:
                return await kv.create(key, new)
            return await kv.update(key, new, last=stored.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            raise _Lost from None
        except nats.js.errors.APIError as exc:
            if exc.err_code in WRONG_LAST_SEQUENCE:
                raise _Lost from None
            raise

    def lost(_: BaseException, delay: float) -> None:
        log.debug("%s changed while it was written; reading it again in %.3fs", key, delay)

    try:
        return await retry_async(once, on=_Lost, backoff=CONFLICT_BACKOFF, attempts=attempts, on_retry=lost)
    except _Lost:
        raise ConflictError(f"{key} kept changing while it was written; try again") from None


class _Lost(Exception):
    """One write lost the race for its revision."""
