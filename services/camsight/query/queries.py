"""EventService requests turned into index queries (shared by gRPC and the CLI's local mode).

Everything here is blocking (it calls the index) and raises
:class:`camsight.query.errors.ApiError` for bad requests.
"""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from camsight.naming import shown
from camsight.query import pagetoken
from camsight.query.errors import ApiError, invalid, not_found
from camsight.query.filters import SQL_INTEGER, Filter, FilterError, parse_filter
from camsight.query.index import EventIndex, Key
from camsight.v1 import event_pb2, event_service_pb2

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_ID_LENGTH = 256
# Buckets are nanoseconds in SQL: the longest one SQLite's INTEGER holds (292 years).
MIN_BUCKET_NS = 10**9
MAX_BUCKET_NS = SQL_INTEGER.stop - 1
ORDERS = {"": True, "start_time desc": True, "start_time asc": False, "start_time": False}
GROUPS = {
    event_service_pb2.COUNT_GROUP_BY_UNSPECIFIED: None,
    event_service_pb2.COUNT_GROUP_BY_TYPE: "type",
    event_service_pb2.COUNT_GROUP_BY_CAMERA: "camera",
    event_service_pb2.COUNT_GROUP_BY_LABEL: "label",
    event_service_pb2.COUNT_GROUP_BY_IDENTITY: "identity",
}


def page_size(value: int, field: str = "page_size") -> int:
    """0 means the default; above the maximum is capped (AIP-158); negative is an error."""
    if value < 0:
        raise invalid(field, f"must be >= 0, got {value}")
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def parse(text: str, field: str = "filter", *, live: bool = False) -> Filter:
    """The parsed filter; INVALID_ARGUMENT naming ``field`` and the parser's reason."""
    try:
        return parse_filter(text, live=live)
    except FilterError as exc:
        raise invalid(field, str(exc)) from None


def opaque_id(value: str, field: str) -> str:
    """An event or snapshot id as a request names it: 1 to 256 characters.

    Such ids are not :func:`camsight.naming.validate_id` ids (a snapshot id is any
    object name), but one of 10,000 characters is no id at all, and only a bounded
    one can be quoted in an error.
    """
    if not 0 < len(value) <= MAX_ID_LENGTH:
        raise invalid(field, f"must be 1 to {MAX_ID_LENGTH} characters")
    return value


def descending(order_by: str) -> bool:
    key = " ".join(order_by.lower().split())
    if key not in ORDERS:
        raise invalid("order_by", f'expected "start_time desc" or "start_time asc", got {shown(order_by)}')
    return ORDERS[key]


def list_events(
    index: EventIndex, req: event_service_pb2.ListEventsRequest, deadline: float | None = None
) -> event_service_pb2.ListEventsResponse:
    flt = parse(req.filter)
    desc = descending(req.order_by)
    size = page_size(req.page_size)
    bound = pagetoken.binding(flt.canonical(), "desc" if desc else "asc")
    after = None
    if req.page_token:
        try:
            after = Key(*pagetoken.decode(req.page_token, bound, (int, str)))
        except pagetoken.PageTokenError as exc:
            raise invalid("page_token", str(exc)) from None
    rows = index.page(flt, descending=desc, after=after, limit=size + 1, deadline=deadline)
    response = event_service_pb2.ListEventsResponse(events=[event for event, _ in rows[:size]])
    if len(rows) > size:
        last = rows[size - 1][1]
        response.next_page_token = pagetoken.encode([last.start_ns, last.id], bound)
    return response


def get_event(index: EventIndex, event_id: str, deadline: float | None = None) -> event_pb2.Event:
    event = index.get(opaque_id(event_id, "id"), deadline=deadline)
    if event is None:
        raise not_found(f"event {shown(event_id)}")
    return event


def _bucket(duration: Duration) -> int:
    """The bucket length in nanoseconds; INVALID_ARGUMENT outside 1 s .. :data:`MAX_BUCKET_NS`.

    Nanos outside 0..999999999 are an invalid Duration (no positive one has them),
    which ToNanoseconds would silently carry into the seconds.
    """
    ns = duration.ToNanoseconds()
    if duration.nanos not in range(10**9) or not MIN_BUCKET_NS <= ns <= MAX_BUCKET_NS:
        raise invalid("bucket", f"must be a duration from 1s to {MAX_BUCKET_NS // 10**9}s (292 years)")
    return ns


def count_events(
    index: EventIndex, req: event_service_pb2.CountEventsRequest, deadline: float | None = None
) -> event_service_pb2.CountEventsResponse:
    flt = parse(req.filter)
    if req.group_by not in GROUPS:
        raise invalid("group_by", f"unknown value {req.group_by}")
    group = GROUPS[req.group_by]
    bucket_ns = _bucket(req.bucket) if req.HasField("bucket") else None
    rows = index.count(flt, group_by=group, bucket_ns=bucket_ns, deadline=deadline)
    response = event_service_pb2.CountEventsResponse()
    for row in rows:
        count = response.counts.add(count=row.count)
        if group == "type":
            count.key = event_pb2.EventType.Name(event_pb2.EventType.ValueType(int(row.key))).removeprefix(
                "EVENT_TYPE_"
            )
        else:
            count.key = str(row.key)
        if row.bucket_start_ns is not None:
            count.bucket_start_time.FromNanoseconds(row.bucket_start_ns)
        response.total += row.count
    return response


__all__ = ["ApiError", "count_events", "get_event", "list_events", "opaque_id", "page_size", "parse"]
