"""ThreadStage: order, bounded memory, stopping and failures (real threads, no sleeps)."""

from __future__ import annotations

import threading

import pytest
from camsight.decoder.stage import StageFailed, ThreadStage


def test_items_are_handled_in_order_on_another_thread() -> None:
    handled: list[tuple[int, str]] = []
    stage: ThreadStage[int] = ThreadStage(
        lambda i: handled.append((i, threading.current_thread().name)), 4, threading.Event(), "encoder-t"
    )
    for i in range(100):
        stage.put(i)
    stage.close()
    assert [i for i, _ in handled] == list(range(100))
    assert {name for _, name in handled} == {"encoder-t"}


def test_put_blocks_while_the_stage_is_full() -> None:
    release, started = threading.Event(), threading.Event()
    handled: list[int] = []

    def handle(i: int) -> None:
        started.set()
        release.wait(10)
        handled.append(i)

    stage: ThreadStage[int] = ThreadStage(handle, 2, threading.Event(), "encoder-t")
    stage.put(0)
    assert started.wait(5)  # 0 is being handled: the queue is empty again
    stage.put(1)
    stage.put(2)  # the queue holds 2 items: full
    putter = threading.Thread(target=stage.put, args=(3,))
    putter.start()
    putter.join(0.3)
    assert putter.is_alive(), "a put into a full stage returned"
    release.set()
    putter.join(5)
    assert not putter.is_alive()
    stage.close()
    assert handled == [0, 1, 2, 3]


def test_a_stopped_stage_drops_what_waits_and_closes_at_once() -> None:
    stop, release, started = threading.Event(), threading.Event(), threading.Event()
    handled: list[int] = []

    def handle(i: int) -> None:
        started.set()
        release.wait(10)
        handled.append(i)

    stage: ThreadStage[int] = ThreadStage(handle, 2, stop, "encoder-t")
    stage.put(0)
    assert started.wait(5)
    stage.put(1)
    stage.put(2)
    stop.set()
    stage.put(3)  # gives up at once: stopping
    release.set()
    stage.close()
    assert handled == [0]


def test_a_failure_reaches_the_putter_and_close() -> None:
    def handle(i: int) -> None:
        if i == 1:
            raise ValueError("bad item")

    stage: ThreadStage[int] = ThreadStage(handle, 2, threading.Event(), "encoder-t")

    def put_until_it_fails() -> None:
        for i in range(1000):  # the failure shows at the latest once item 1 was handled
            stage.put(i)

    with pytest.raises(StageFailed, match="encoder-t failed: ValueError") as failed:
        put_until_it_fails()
    assert isinstance(failed.value.__cause__, ValueError)
    with pytest.raises(StageFailed):
        stage.close()
