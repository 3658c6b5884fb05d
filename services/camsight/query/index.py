"""The event index: one SQLite file in WAL mode, one row per event id.

Why SQLite: an embedded file needs no server, survives restarts, and with
WAL readers never block the single writer. Every replica keeps its own copy,
rebuilt from the EVENTS stream when missing, so the file is a cache of the
stream, never the source of truth.

The started/updated/ended messages of an event merge into one row: the
message with the highest (revision, state) wins, the earliest start time and
any end time are kept. Writing the same message twice changes nothing, so
redelivery after a crash is harmless.

All methods are blocking: callers run them off the event loop. The writer
uses one connection behind a lock; each reading thread gets its own
connection. A read can carry a deadline after which SQLite aborts it.

The schema carries a version (``PRAGMA user_version``). A file written by
an older version is migrated in place when opened, in one transaction: the
new columns are added and filled from each row's stored Event, so a replica
keeps its index (and its stream position) across an upgrade instead of
re-reading the whole EVENTS stream.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camsight.query.filters import Filter
from camsight.v1 import event_pb2

log = logging.getLogger(__name__)

# 1: the first schema (user_version 0 on disk). 2: direction, attributes (JSON) and media times.
SCHEMA_VERSION = 2
# Columns added after version 1, at the end of the table as ALTER TABLE puts them, so that
# a migrated file and a new one have the same layout.
ADDED_COLUMNS = {
    2: (
        "direction INTEGER NOT NULL DEFAULT 0",
        "attributes TEXT NOT NULL DEFAULT '{}'",
        "start_media_ns INTEGER",
        "end_media_ns INTEGER",
    ),
}
COLUMNS = (
    "id", "camera", "type", "state", "label", "identity", "zone", "line", "rule", "confidence",
    "start_ns", "end_ns", "revision", "seen_ns", "data",
    "direction", "attributes", "start_media_ns", "end_media_ns",
)  # fmt: skip
INSERT = f"INSERT OR REPLACE INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
MIGRATE_CHUNK = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    type INTEGER NOT NULL,
    state INTEGER NOT NULL,
    label TEXT NOT NULL,
    identity TEXT NOT NULL,
    zone TEXT NOT NULL,
    line TEXT NOT NULL,
    rule TEXT NOT NULL,
    confidence REAL NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER,
    revision INTEGER NOT NULL,
    seen_ns INTEGER NOT NULL,
    data BLOB NOT NULL,
    direction INTEGER NOT NULL DEFAULT 0,
    attributes TEXT NOT NULL DEFAULT '{}',
    start_media_ns INTEGER,
    end_media_ns INTEGER
);
CREATE INDEX IF NOT EXISTS events_time ON events (start_ns, id);
CREATE INDEX IF NOT EXISTS events_camera_time ON events (camera, start_ns, id);
CREATE INDEX IF NOT EXISTS events_camera_type_time ON events (camera, type, start_ns, id);
CREATE INDEX IF NOT EXISTS events_type_time ON events (type, start_ns, id);
CREATE INDEX IF NOT EXISTS events_label_time ON events (label, start_ns, id);
CREATE INDEX IF NOT EXISTS events_identity_time ON events (identity, start_ns, id);
CREATE INDEX IF NOT EXISTS events_seen ON events (seen_ns);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

GROUP_COLUMNS = {"type": "type", "camera": "camera", "label": "label", "identity": "identity"}
PROGRESS_STEPS = 2000
# Page cache per connection (KiB, negative = size in KiB for SQLite). Inserts into seven
# B-trees keyed by random ids and times touch many pages: a large writer cache keeps the
# ingest rate flat as the index grows (measured: 2 MiB default halves it at 1M rows).
WRITER_CACHE_KIB = 64 * 1024
READER_CACHE_KIB = 16 * 1024
LOOKUP_CHUNK = 500


class DeadlineExceededError(TimeoutError):
    """A read ran past its caller's deadline and was interrupted."""


@dataclass(frozen=True)
class Key:
    """Position of a row in time order: the keyset pagination cursor."""

    start_ns: int
    id: str


@dataclass(frozen=True)
class CountRow:
    key: str | int
    bucket_start_ns: int | None
    count: int


def merge(old: event_pb2.Event | None, new: event_pb2.Event) -> event_pb2.Event | None:
    """The merged event, or None when ``new`` adds nothing to ``old``."""
    if old is None:
        return new
    winner, other = (new, old) if (new.revision, new.state) > (old.revision, old.state) else (old, new)
    merged = event_pb2.Event()
    merged.CopyFrom(winner)
    starts = [e.start_time for e in (old, new) if e.HasField("start_time")]
    if starts:
        merged.start_time.CopyFrom(min(starts, key=lambda ts: ts.ToNanoseconds()))
    if not merged.HasField("end_time") and other.HasField("end_time"):
        merged.end_time.CopyFrom(other.end_time)
    return None if merged == old else merged


def _added(event: event_pb2.Event) -> tuple[Any, ...]:
    """The values of the columns added in schema version 2 (see :data:`ADDED_COLUMNS`).

    Attributes are a JSON object (keys sorted) that filters read with
    ``json_extract``: one column instead of a side table keeps an insert at
    one row, and the filter binds the key's path as a parameter.
    """
    return (
        int(event.direction),
        json.dumps(dict(sorted(event.attributes.items())), ensure_ascii=False),
        event.start_media_time.ToNanoseconds() if event.HasField("start_media_time") else None,
        event.end_media_time.ToNanoseconds() if event.HasField("end_media_time") else None,
    )


def _row(event: event_pb2.Event, seen_ns: int) -> tuple[Any, ...]:
    """The row of :data:`COLUMNS` for ``event``."""
    return (
        event.id,
        event.camera_id,
        int(event.type),
        int(event.state),
        event.label,
        event.identity_id,
        event.zone_id,
        event.line_id,
        event.rule_id,
        float(event.confidence),
        event.start_time.ToNanoseconds(),
        event.end_time.ToNanoseconds() if event.HasField("end_time") else None,
        event.revision,
        seen_ns,
        event.SerializeToString(deterministic=True),
        *_added(event),
    )


def _decode(data: bytes) -> event_pb2.Event:
    event = event_pb2.Event()
    event.ParseFromString(data)
    return event


class EventIndex:
    """The SQLite index file (created with its folder when missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._writer = self._connect(WRITER_CACHE_KIB)
        self._create_or_migrate()

    def _create_or_migrate(self) -> None:
        """Create the schema, or bring an older file up to :data:`SCHEMA_VERSION`.

        One IMMEDIATE transaction: a second process opening the same file
        (``camsight events --data-dir`` beside a running service) waits and
        then finds the work done; a crash midway leaves the old version intact.
        """
        cur = self._writer.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            version = int(cur.execute("PRAGMA user_version").fetchone()[0])
            exists = cur.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
            ).fetchone()
            if exists and version < SCHEMA_VERSION:
                self._migrate(cur, max(version, 1))
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            if version < SCHEMA_VERSION:
                cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def _migrate(self, cur: sqlite3.Cursor, version: int) -> None:
        """Add the columns of the versions after ``version`` and fill them from each stored Event."""
        log.info("migrating the event index %s from schema %d to %d", self.path, version, SCHEMA_VERSION)
        for added in range(version + 1, SCHEMA_VERSION + 1):
            for column in ADDED_COLUMNS[added]:
                cur.execute(f"ALTER TABLE events ADD COLUMN {column}")
        last = -1
        while True:
            rows = cur.execute(
                "SELECT rowid, data FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, MIGRATE_CHUNK)
            ).fetchall()
            if not rows:
                break
            cur.executemany(
                "UPDATE events SET direction = ?, attributes = ?, start_media_ns = ?, end_media_ns = ? "
                "WHERE rowid = ?",
                [(*_added(_decode(data)), rowid) for rowid, data in rows],
            )
            last = rows[-1][0]

    def _connect(self, cache_kib: int = READER_CACHE_KIB) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the batch is acked, even across a power loss
        # (NORMAL would only survive a process crash). One fsync per batch, not per event.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def _reading(self, deadline: float | None) -> Iterator[sqlite3.Connection]:
        """A reader connection that aborts its statement past ``deadline`` (monotonic)."""
        conn = self._reader()
        if deadline is not None:
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), PROGRESS_STEPS)
        try:
            yield conn
        except sqlite3.OperationalError as exc:
            if deadline is not None and "interrupt" in str(exc):
                raise DeadlineExceededError("query ran past the deadline") from None
            raise
        finally:
            if deadline is not None:
                conn.set_progress_handler(None, PROGRESS_STEPS)

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()

    # -- writing -----------------------------------------------------------

    def upsert(self, batch: Sequence[tuple[event_pb2.Event, int]]) -> list[event_pb2.Event]:
        """Merge ``(event, seen_ns)`` pairs in one transaction; returns the rows that changed.

        When this returns, the batch is durable (committed), so its messages
        may be acknowledged.
        """
        changed: dict[str, event_pb2.Event] = {}
        with self._write_lock:
            cur = self._writer.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                stored = self._stored(cur, {event.id for event, _ in batch})
                for event, seen_ns in batch:
                    old = changed.get(event.id) or stored.get(event.id)
                    merged = merge(old, event)
                    if merged is None:
                        continue
                    if not merged.HasField("start_time"):
                        merged.start_time.FromNanoseconds(seen_ns)
                    cur.execute(INSERT, _row(merged, seen_ns))
                    changed[event.id] = merged
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return list(changed.values())

    @staticmethod
    def _stored(cur: sqlite3.Cursor, ids: set[str]) -> dict[str, event_pb2.Event]:
        """The stored rows of ``ids`` (one query per chunk instead of one per event)."""
        found: dict[str, event_pb2.Event] = {}
        wanted = sorted(ids)
        for first in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[first : first + LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for event_id, data in cur.execute(f"SELECT id, data FROM events WHERE id IN ({marks})", chunk):
                found[event_id] = _decode(data)
        return found

    def delete_older_than(self, cutoff_ns: int) -> int:
        """Retention: remove events whose last message is older than ``cutoff_ns``."""
        with self._write_lock:
            cur = self._writer.execute("DELETE FROM events WHERE seen_ns < ?", (cutoff_ns,))
            return cur.rowcount

    def set_meta(self, key: str, value: str) -> None:
        with self._write_lock:
            self._writer.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        row = self._reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def optimize(self) -> None:
        """Refresh the planner's statistics (cheap; run now and then)."""
        with self._write_lock:
            self._writer.execute("PRAGMA optimize")

    # -- reading -----------------------------------------------------------

    def get(self, event_id: str, deadline: float | None = None) -> event_pb2.Event | None:
        with self._reading(deadline) as conn:
            row = conn.execute("SELECT data FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else _decode(row[0])

    def page(
        self,
        flt: Filter,
        *,
        descending: bool = True,
        after: Key | None = None,
        limit: int = 50,
        deadline: float | None = None,
    ) -> list[tuple[event_pb2.Event, Key]]:
        """Up to ``limit`` events in (start_time, id) order, strictly after ``after``."""
        where, params = flt.sql()
        if after is not None:
            where += f" AND (start_ns, id) {'<' if descending else '>'} (?, ?)"
            params += [after.start_ns, after.id]
        direction = "DESC" if descending else "ASC"
        sql = (
            f"SELECT start_ns, id, data FROM events WHERE {where} "
            f"ORDER BY start_ns {direction}, id {direction} LIMIT ?"
        )
        with self._reading(deadline) as conn:
            rows = conn.execute(sql, [*params, limit]).fetchall()
        return [(_decode(data), Key(start_ns, event_id)) for start_ns, event_id, data in rows]

    def count(
        self,
        flt: Filter,
        *,
        group_by: str | None = None,
        bucket_ns: int | None = None,
        deadline: float | None = None,
    ) -> list[CountRow]:
        """Counts per group value and, optionally, per epoch-aligned time bucket."""
        group = GROUP_COLUMNS[group_by] if group_by else "''"
        params: list[Any] = []
        bucket = "NULL"
        if bucket_ns:
            bucket = "(start_ns - (start_ns % ?))"
            params.append(bucket_ns)
        where, where_params = flt.sql()
        sql = (
            f"SELECT {group} AS g, {bucket} AS b, COUNT(*) FROM events WHERE {where} "
            "GROUP BY g, b ORDER BY b, g"
        )
        with self._reading(deadline) as conn:
            rows = conn.execute(sql, [*params, *where_params]).fetchall()
        return [CountRow(g, b, n) for g, b, n in rows]

    def total(self) -> int:
        return int(self._reader().execute("SELECT COUNT(*) FROM events").fetchone()[0])
