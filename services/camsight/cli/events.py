"""``camsight events list|get|tail|count``: search events over gRPC or in a data folder.

The connection options defined here (``--server``, ``--token``, ``--tls``,
``--ca-file``, ``--json``) are shared by ``camsight cameras`` and
``camsight faces``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from camsight.cli import app
from camsight.cli.common import fail
from camsight.query.client import DEFAULT_SERVER, Client, ClientError, LocalEvents, to_json
from camsight.query.filters import parse_time
from camsight.v1 import analysis_pb2, event_pb2, event_service_pb2

ServerOption = Annotated[
    str, typer.Option("--server", "-s", help="Query service host:port.", envvar="CAMSIGHT_SERVER")
]
TokenOption = Annotated[
    str | None, typer.Option("--token", help="Bearer token (read or admin scope).", envvar="CAMSIGHT_TOKEN")
]
TlsOption = Annotated[bool, typer.Option("--tls", help="Connect with TLS (system roots unless --ca-file).")]
CaOption = Annotated[Path | None, typer.Option("--ca-file", help="CA certificate to trust (implies --tls).")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line, for scripts.")]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Read the index of this data folder directly (no server).")
]
FilterOption = Annotated[
    str,
    typer.Option("--filter", "-f", help="AIP-160 filter, e.g. 'camera = \"lobby\" AND type = ZONE_ENTER'."),
]

events_app = typer.Typer(help="Search, count and follow events.", no_args_is_help=True)
app.add_typer(events_app, name="events")


class Order(StrEnum):
    desc = "desc"
    asc = "asc"


class GroupBy(StrEnum):
    none = "none"
    type = "type"
    camera = "camera"
    label = "label"
    identity = "identity"


@contextmanager
def connect(server: str, token: str | None, tls: bool, ca_file: Path | None) -> Iterator[Client]:
    """A client whose failures end the command with a one-line error."""
    client = Client(server=server, token=token, tls=tls, ca_file=ca_file)
    try:
        yield client
    except ClientError as exc:
        fail(str(exc))
    finally:
        client.close()


@contextmanager
def local(data_dir: Path) -> Iterator[LocalEvents]:
    try:
        events = LocalEvents(data_dir)
    except ClientError as exc:
        fail(str(exc))
    try:
        yield events
    except ClientError as exc:
        fail(str(exc))
    finally:
        events.close()


def _time(ts: Timestamp) -> str:
    if not ts.seconds and not ts.nanos:
        return "-"
    return ts.ToDatetime(tzinfo=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _media(event: event_pb2.Event) -> str:
    """Where the event starts in its source (seconds), blank when the event has no media time."""
    if not event.HasField("start_media_time"):
        return ""
    return f"{event.start_media_time.ToNanoseconds() / 1e9:.1f}s"


def _direction(event: event_pb2.Event) -> str:
    """``in``/``out`` for line crossings, blank when unset (every other event)."""
    if not event.direction:
        return ""
    return (
        str(analysis_pb2.CrossingDirection.Name(event.direction)).removeprefix("CROSSING_DIRECTION_").lower()
    )


def format_event(event: event_pb2.Event) -> str:
    """One readable line per event: time, media position, type, camera, who, where, direction, state."""
    kind = event_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_").lower()
    state = event_pb2.EventState.Name(event.state).removeprefix("EVENT_STATE_").lower()
    who = event.identity_name or event.identity_id or event.label or "-"
    where = event.zone_id or event.line_id or "-"
    return (
        f"{_time(event.start_time):24} {_media(event):>9}  {kind:16} {event.camera_id:16} {who:14} "
        f"{where:12} {_direction(event):3} {state:8} {event.confidence:4.2f}  {event.id}"
    )


def emit(event: event_pb2.Event, as_json: bool) -> None:
    typer.echo(to_json(event) if as_json else format_event(event))


def since_timestamp(value: str) -> Timestamp:
    """``--since``: an RFC 3339 time or a duration back from now (30s, 10m, 2h, 1d)."""
    ts = Timestamp()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", value.strip())
    try:
        if match:
            unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
            ts.FromDatetime(datetime.now(UTC) - timedelta(seconds=float(match.group(1)) * unit))
        else:
            ts.FromNanoseconds(parse_time(value))
    except ValueError as exc:
        fail(f"--since {value!r}: {exc}")
    return ts


def duration(value: str) -> Duration:
    match = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if not match:
        fail(f"--bucket {value!r}: expected a duration such as 30s, 5m, 1h or 1d")
    seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return Duration(seconds=seconds)


@events_app.command("list")
def list_command(
    filter: FilterOption = "",
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many events (0 = all).")] = 50,
    order: Annotated[Order, typer.Option("--order", help="By start time.")] = Order.desc,
    data_dir: DataDirOption = None,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    tls: TlsOption = False,
    ca_file: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """List events matching a filter, newest first."""
    if limit < 0:
        fail("--limit must be >= 0")
    request = event_service_pb2.ListEventsRequest(filter=filter, order_by=f"start_time {order.value}")
    shown = 0

    def pages(
        fetch: Callable[[event_service_pb2.ListEventsRequest], event_service_pb2.ListEventsResponse],
    ) -> None:
        nonlocal shown
        while True:
            request.page_size = min(limit - shown, 1000) if limit else 1000
            response = fetch(request)
            for event in response.events:
                emit(event, as_json)
            shown += len(response.events)
            if not response.next_page_token or (limit and shown >= limit):
                return
            request.page_token = response.next_page_token

    if data_dir is not None:
        with local(data_dir) as events:
            pages(events.list)
    else:
        with connect(server, token, tls, ca_file) as client:
            stub = client.events()
            pages(lambda r: client.call(stub.ListEvents, r))


@events_app.command("get")
def get_command(
    event_id: Annotated[str, typer.Argument(help="The event id.")],
    data_dir: DataDirOption = None,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    tls: TlsOption = False,
    ca_file: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one event with everything it holds."""
    if data_dir is not None:
        with local(data_dir) as events:
            event = events.get(event_id)
    else:
        with connect(server, token, tls, ca_file) as client:
            event = client.call(client.events().GetEvent, event_service_pb2.GetEventRequest(id=event_id))
    typer.echo(to_json(event) if as_json else str(event).rstrip())


@events_app.command("tail")
def tail_command(
    filter: FilterOption = "",
    since: Annotated[
        str | None, typer.Option("--since", help="Replay from this time first (RFC 3339, or 10m, 2h...).")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    tls: TlsOption = False,
    ca_file: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Follow events live (Ctrl-C to stop)."""
    request = event_service_pb2.StreamEventsRequest(filter=filter)
    if since:
        request.start_time.CopyFrom(since_timestamp(since))
    with connect(server, token, tls, ca_file) as client:
        try:
            for item in client.stream(client.events().StreamEvents, request):
                emit(item.event, as_json)
        except KeyboardInterrupt:
            pass


@events_app.command("count")
def count_command(
    filter: FilterOption = "",
    group_by: Annotated[GroupBy, typer.Option("--group-by", "-g", help="Count per value of this field.")] = (
        GroupBy.none
    ),
    bucket: Annotated[
        str | None, typer.Option("--bucket", help="Also per time bucket: 30s, 5m, 1h, 1d.")
    ] = None,
    data_dir: DataDirOption = None,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    tls: TlsOption = False,
    ca_file: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Count events, optionally grouped and bucketed in time."""
    request = event_service_pb2.CountEventsRequest(
        filter=filter,
        group_by=event_service_pb2.CountGroupBy.Value(f"COUNT_GROUP_BY_{group_by.value.upper()}")
        if group_by is not GroupBy.none
        else event_service_pb2.COUNT_GROUP_BY_UNSPECIFIED,
    )
    if bucket:
        request.bucket.CopyFrom(duration(bucket))
    if data_dir is not None:
        with local(data_dir) as events:
            response = events.count(request)
    else:
        with connect(server, token, tls, ca_file) as client:
            response = client.call(client.events().CountEvents, request)
    for count in response.counts:
        if as_json:
            typer.echo(to_json(count))
        else:
            when = _time(count.bucket_start_time) if count.HasField("bucket_start_time") else ""
            typer.echo(f"{when:24}  {count.key or 'total':20} {count.count}".strip())
    if not as_json and group_by is not GroupBy.none:
        typer.echo(f"{'total':20} {response.total}")
