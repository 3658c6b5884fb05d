"""camsight.retry: the one back-off policy and the retry loop every retrying path uses."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from camsight.retry import Backoff, retry_async


def test_delays_double_within_equal_jitter_up_to_the_cap() -> None:
    backoff = Backoff(initial=1.0, maximum=60.0)
    for attempt in range(12):
        d = min(60.0, 2.0**attempt)
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(d / 2 <= x <= d for x in delays), attempt
        assert len(set(delays)) > 1  # jittered: replicas do not retry in step


async def test_retries_the_named_errors_until_the_call_works() -> None:
    calls: list[float] = []
    retried: list[tuple[str, float]] = []

    async def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError(f"down {len(calls)}")
        return "up"

    result = await retry_async(
        flaky,
        on=ConnectionError,
        backoff=Backoff(0.02, 0.04),
        on_retry=lambda exc, delay: retried.append((str(exc), delay)),
    )
    assert result == "up" and len(calls) == 3
    assert [r[0] for r in retried] == ["down 1", "down 2"]
    assert 0.01 <= retried[0][1] <= 0.02 and 0.02 <= retried[1][1] <= 0.04
    assert calls[1] - calls[0] >= retried[0][1] * 0.9


async def test_other_errors_and_the_last_attempt_go_through() -> None:
    async def wrong() -> None:
        raise KeyError("not retried")

    with pytest.raises(KeyError):
        await retry_async(wrong, on=ConnectionError, backoff=Backoff(0.01, 0.01))
    count = 0

    async def down() -> None:
        nonlocal count
        count += 1
        raise ConnectionError("still down")

    with pytest.raises(ConnectionError, match="still down"):
        await retry_async(down, on=ConnectionError, backoff=Backoff(0.001, 0.001), attempts=4)
    assert count == 4


async def test_a_stop_ends_the_wait_at_once_with_the_last_error() -> None:
    stopping = asyncio.Event()

    async def down() -> None:
        raise ConnectionError("down")

    task = asyncio.create_task(
        retry_async(down, on=ConnectionError, backoff=Backoff(30.0, 30.0), stopping=stopping)
    )
    await asyncio.sleep(0)  # let it fail once and start its 15-30 s wait
    started = time.monotonic()
    stopping.set()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 1.0


def test_a_thread_wait_ends_when_stopped() -> None:
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    assert Backoff(30.0, 30.0).wait(0, stop) is True
    assert time.monotonic() - started < 5.0


async def test_a_lambda_returning_an_awaitable_is_awaited() -> None:
    async def value() -> int:
        return 7

    assert await retry_async(lambda: value(), on=ConnectionError, backoff=Backoff(0.01, 0.01)) == 7
