"""Crash safety: SIGKILL a real ``camsight serve query`` mid-ingest, start it again.

Nothing may be lost (every published event ends up indexed, merged to its
last revision) and nothing doubled, because messages are acked only after
the SQLite commit and inserts merge idempotently by event id.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml
from camsight.bus import Bus
from camsight.config import NatsSettings
from camsight.query.settings import default_index_path
from camsight.v1 import event_pb2
from helpers import wait_for
from query_helpers import make_event

TOTAL = 3000


def indexed(
    path: Path, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None, where: str = "1"
) -> int:
    """Rows in the index file (matching ``where``); fails at once when the service process died."""
    if proc is not None and proc.poll() is not None:
        raise AssertionError(
            f"camsight serve query exited {proc.returncode}: {log.read_text()[-2000:] if log else ''}"
        )
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events WHERE " + where).fetchone()[0])
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    camsight = Path(sys.executable).parent / "camsight"
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(camsight), "serve", "query", "--config", str(config)], stdout=out, stderr=out
        )


async def test_killed_mid_ingest_loses_and_doubles_nothing(
    bus: Bus, nats_settings: NatsSettings, tmp_path: Path
) -> None:
    config = tmp_path / "camsight.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "instance": "replica-a",
                "nats": {"servers": nats_settings.servers},
                "data_dir": str(tmp_path / "data"),
                "http": {"host": "127.0.0.1", "port": 0},
                "log": {"level": "WARNING"},
                "services": {
                    "query": {"host": "127.0.0.1", "port": 0, "ack_wait_s": 1.0, "ingest_batch": 64}
                },
            }
        )
    )
    index = default_index_path(tmp_path / "data")
    log = tmp_path / "query.log"

    async def publish_all() -> None:
        # Every event as started (revision 0) then ended (revision 1).
        for first in range(0, TOTAL, 100):
            for state, revision in ((event_pb2.EVENT_STATE_STARTED, 0), (event_pb2.EVENT_STATE_ENDED, 1)):
                batch = [make_event(n, state=state, revision=revision) for n in range(first, first + 100)]
                await asyncio.gather(*(bus.publish_event(e) for e in batch))

    publisher = asyncio.create_task(publish_all())
    proc = start(config, log)
    try:
        await wait_for(lambda: indexed(index, proc, log) >= 300, 30, "the first events indexed")
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        killed_at = indexed(index)
        proc = start(config, log)
        await publisher
        # Both messages of every event, including those the killed process had fetched
        # but not acked (redelivered after ack_wait_s).
        ended = f"state = {event_pb2.EVENT_STATE_ENDED}"
        await wait_for(lambda: indexed(index, proc, log, ended) == TOTAL, 60, f"all {TOTAL} events ended")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
    assert code == 0, log.read_text()[-2000:]
    assert killed_at < TOTAL
    with sqlite3.connect(index) as conn:
        rows = conn.execute("SELECT id, state, revision FROM events").fetchall()
    assert len(rows) == len({r[0] for r in rows}) == TOTAL
    assert {(state, revision) for _, state, revision in rows} == {(event_pb2.EVENT_STATE_ENDED, 1)}
