"""Reading and paging KV buckets of protobuf values (cameras, statuses, identities)."""

from __future__ import annotations

from typing import Protocol, TypeVar

import nats.js.errors
from google.protobuf.message import Message
from nats.js.kv import KeyValue

from camsight.bus import Bus
from camsight.naming import InvalidIdError, validate_id
from camsight.query import pagetoken, rpc
from camsight.query.errors import ApiError, invalid, not_found
from camsight.query.queries import page_size

M = TypeVar("M", bound=Message)


def check_id(value: str, field: str) -> str:
    try:
        return validate_id(value, field)
    except InvalidIdError as exc:
        raise invalid(field, str(exc)) from None


async def get_entry(kv: KeyValue, key: str, cls: type[M], what: str) -> tuple[M, int]:
    """The decoded value and its revision; NOT_FOUND when absent or deleted."""
    try:
        entry = await kv.get(key)
    except nats.js.errors.NotFoundError:
        raise not_found(f"{what} {key!r}") from None
    msg = cls()
    msg.ParseFromString(entry.value or b"")
    return msg, entry.revision or 0


class PageRequest(Protocol):
    """An AIP-132 List request: the two fields paging needs."""

    page_size: int
    page_token: str


async def list_page(
    bus: Bus, bucket: str, cls: type[M], request: PageRequest, what: str
) -> tuple[list[M], str]:
    """One page of the values of ``bucket`` in key order, and the next page's token ("" at the end)."""
    rpc.ensure_connected(bus)
    size, token = page_size(request.page_size), request.page_token
    bound = pagetoken.binding(what)
    after = ""
    if token:
        try:
            (after,) = pagetoken.decode(token, bound, (str,))
        except pagetoken.PageTokenError as exc:
            raise invalid("page_token", str(exc)) from None
    kv = await bus.kv(bucket)
    keys = [k for k in await bus.kv_keys(bucket) if k > after]
    items: list[M] = []
    for key in keys[:size]:
        try:
            items.append((await get_entry(kv, key, cls, what))[0])
        except ApiError:  # deleted since keys() was read
            continue
    next_token = pagetoken.encode([keys[size - 1]], bound) if len(keys) > size else ""
    return items, next_token
