"""Query service benchmark: ListEvents latency on a large index, ingest rate through NATS.

* Ingest: N events are published on EVENTS first, then the query service's
  real ingestor (durable pull consumer -> SQLite, ack after commit) is
  started and timed until every event is indexed. Baseline in the same run:
  a bare pull consumer that only fetches and acks (the NATS ceiling).
* ListEvents: an index of M events (50 cameras, 8 event types, 30 days) is
  filled directly (bulk upserts, the same code path as ingest) and served by
  the real gRPC server; p50/p99 of ListEvents with camera + type + one-day
  time range filters through a real channel. Baseline: GetEvent by id.

``run(smoke=True)`` uses a few thousand events; the full run indexes
1,000,000 events (several minutes on a small machine).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from camsight.bus import Bus, PullWorker, WorkerConfig, connect, subjects
from camsight.config import NatsSettings, StreamSettings
from camsight.natsserver import EmbeddedNats
from camsight.query.index import EventIndex
from camsight.query.ingest import Ingestor, LiveHub
from camsight.query.server import build_server
from camsight.query.settings import QuerySettings
from camsight.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc

BASE_S = 1_767_225_600  # 2026-01-01T00:00:00Z
DAYS = 30
CAMERAS = [f"cam-{i:02d}" for i in range(50)]
TYPES = [t for t in event_pb2.EventType.values() if t not in (0, event_pb2.EVENT_TYPE_CAMERA_STATUS)][:8]
LABELS = ["person", "car", "bicycle", "dog"]


def synthetic(n: int, rng: random.Random) -> event_pb2.Event:
    event = event_pb2.Event(
        id=f"bench-{n:08d}",
        type=rng.choice(TYPES),
        state=event_pb2.EVENT_STATE_ENDED,
        camera_id=rng.choice(CAMERAS),
        label=rng.choice(LABELS),
        zone_id="door",
        rule_id="r1",
        confidence=rng.random(),
        revision=1,
    )
    start_ns = (BASE_S + int(rng.random() * DAYS * 86400)) * 10**9
    event.start_time.FromNanoseconds(start_ns)
    event.end_time.FromNanoseconds(start_ns + 2 * 10**9)
    return event


async def _publish(bus: Bus, count: int, prefix: str) -> None:
    rng = random.Random(1)
    for first in range(0, count, 500):
        batch = [synthetic(n, rng) for n in range(first, min(first + 500, count))]
        for event in batch:
            event.id = f"{prefix}-{event.id}"
        await asyncio.gather(*(bus.publish_event(e) for e in batch))


async def _time_worker(worker: PullWorker | Ingestor, done: Callable[[], bool], timeout: float) -> float:
    """Seconds from starting ``worker`` until ``done()``; the worker is then drained."""
    task = asyncio.create_task(worker.run())
    start = time.perf_counter()
    try:
        while not done():
            if time.perf_counter() - start > timeout or task.done():
                raise RuntimeError("benchmark worker stopped or timed out")
            await asyncio.sleep(0.005)
        return time.perf_counter() - start
    finally:
        await worker.stop()
        await task


async def bench_ingest(bus: Bus, count: int, workdir: Path) -> dict[str, float]:
    await _publish(bus, count, "ingest")
    # Baseline: fetch and ack only.
    acked = 0

    async def ack_only(msgs: Any) -> list[None]:
        nonlocal acked
        acked += len(msgs)
        return [None] * len(msgs)

    cfg = QuerySettings()
    baseline = PullWorker(
        bus,
        WorkerConfig(
            stream=subjects.EVENTS_STREAM,
            durable="bench-baseline",
            filter_subjects=[subjects.EVENTS_ALL],
            batch=cfg.ingest_batch,
            fetch_timeout=0.5,
            max_ack_pending=4 * cfg.ingest_batch,
        ),
        ack_only,
    )
    await baseline.subscribe()
    base_s = await _time_worker(baseline, lambda: acked >= count, 600)

    index = EventIndex(workdir / "ingest.sqlite")
    ingestor = Ingestor(bus, index, LiveHub(), "bench-ingest", cfg)
    await ingestor.worker.subscribe()
    ingest_s = await _time_worker(ingestor, lambda: index.total() >= count, 600)
    index.close()
    return {
        "ingest_events": count,
        "ingest_events_per_s": round(count / ingest_s),
        "baseline_fetch_ack_per_s": round(count / base_s),
        "ingest_vs_baseline": round(base_s / ingest_s, 3),
    }


def fill_index(index: EventIndex, count: int) -> float:
    rng = random.Random(2)
    start = time.perf_counter()
    for first in range(0, count, 10_000):
        batch = [(synthetic(n, rng), time.time_ns()) for n in range(first, min(first + 10_000, count))]
        index.upsert(batch)
    index.optimize()
    return time.perf_counter() - start


def _percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return {"p50_ms": round(statistics.median(samples) * 1000, 2), "p99_ms": round(p99 * 1000, 2)}


async def bench_list(bus: Bus, count: int, queries: int, workdir: Path) -> dict[str, Any]:
    index = EventIndex(workdir / "list.sqlite")
    fill_s = await asyncio.to_thread(fill_index, index, count)
    server = build_server(QuerySettings(host="127.0.0.1", port=0), index, LiveHub(), bus)
    await server.server.start()
    rng = random.Random(3)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = event_service_pb2_grpc.EventServiceStub(channel)
            listed: list[float] = []
            returned = 0
            for _ in range(queries):
                day = rng.randrange(DAYS - 1)
                since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE_S + day * 86400))
                until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE_S + (day + 1) * 86400))
                kind = event_pb2.EventType.Name(rng.choice(TYPES)).removeprefix("EVENT_TYPE_")
                flt = (
                    f'camera = "{rng.choice(CAMERAS)}" AND type = {kind} '
                    f'AND start_time >= "{since}" AND start_time < "{until}"'
                )
                t0 = time.perf_counter()
                resp = await stub.ListEvents(event_service_pb2.ListEventsRequest(filter=flt, page_size=50))
                listed.append(time.perf_counter() - t0)
                returned += len(resp.events)
            got: list[float] = []
            for _ in range(queries):
                t0 = time.perf_counter()
                await stub.GetEvent(event_service_pb2.GetEventRequest(id=f"bench-{rng.randrange(count):08d}"))
                got.append(time.perf_counter() - t0)
    finally:
        await server.server.stop(0)
        index.close()
    return {
        "indexed_events": count,
        "fill_events_per_s": round(count / fill_s),
        "list_queries": queries,
        "list_mean_results": round(returned / queries, 1),
        "list": _percentiles(listed),
        "baseline_get_event": _percentiles(got),
    }


async def _run(smoke: bool, ingest_events: int | None, indexed_events: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="camsight-bench-query-") as tmp:
        workdir = Path(tmp)
        nats = EmbeddedNats(store_dir=workdir / "jetstream", log_file=workdir / "nats.log")
        nats.start()
        try:
            bus = await connect(NatsSettings(servers=[nats.url]), StreamSettings(), name="bench-query")
            await bus.ensure_topology()
            try:
                ingest = await bench_ingest(bus, ingest_events or (3_000 if smoke else 100_000), workdir)
                listing = await bench_list(
                    bus, indexed_events or (5_000 if smoke else 1_000_000), 50 if smoke else 500, workdir
                )
            finally:
                await bus.close()
        finally:
            nats.stop()
    return {"smoke": smoke, **ingest, **listing}


def run(
    smoke: bool = False, ingest_events: int | None = None, indexed_events: int | None = None
) -> dict[str, Any]:
    """Measure; the sizes default to the smoke or full figures given in the module docstring."""
    return asyncio.run(_run(smoke, ingest_events, indexed_events))


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))
