"""Retrying with back-off: the one policy every retry loop of camsight uses.

Built on tenacity (a maintained library; decision 0008): capped exponential
back-off with jitter, the n-th delay drawn in [d/2, d] for
d = min(maximum, initial * 2**n), so that replicas that failed together do not
retry in step, and a capped delay still averages three quarters of the cap.
Waits end early when the service stops: a retry never holds up a shutdown.

Two shapes: :func:`retry_async` runs an awaitable until it succeeds (or the
attempts run out, or the service stops); :meth:`Backoff.delay` gives the
n-th delay to a loop that cannot be written as "call until it works" (the
decoder's camera thread, which goes back to the first delay once the camera
came online).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

log = logging.getLogger(__name__)

T = TypeVar("T")

OnRetry = Callable[[BaseException, float], None]
"""Told of each failure that is retried: the error and the seconds until the next try."""


@dataclass(frozen=True)
class Backoff:
    """Capped exponential back-off with jitter, in seconds: the first delay is in
    [initial/2, initial], each next one doubles, up to [maximum/2, maximum]."""

    initial: float
    maximum: float

    def strategy(self) -> tenacity.wait.wait_base:
        # d/2 fixed plus uniform(0, d/2): "equal jitter".
        half, cap = self.initial / 2, self.maximum / 2
        return tenacity.wait_exponential(multiplier=half, max=cap) + tenacity.wait_random_exponential(
            multiplier=half, max=cap
        )

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (0 for the first failure)."""
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = attempt + 1
        return float(self.strategy()(state))

    def wait(self, attempt: int, stop: threading.Event) -> bool:
        """Block a thread for :meth:`delay`; True when ``stop`` was set meanwhile."""
        return stop.wait(self.delay(attempt))


async def retry_async(
    call: Callable[[], Awaitable[T]],
    *,
    on: type[BaseException] | tuple[type[BaseException], ...],
    backoff: Backoff,
    attempts: int | None = None,
    stopping: asyncio.Event | None = None,
    on_retry: OnRetry | None = None,
) -> T:
    """``await call()`` until it returns, retrying the errors ``on`` after a back-off.

    Re-raises the last error when ``attempts`` calls failed, or at once when
    ``stopping`` is set (also during a wait). Other errors go through at once.
    """
    stop: tenacity.stop.stop_base = (
        tenacity.stop_never if attempts is None else tenacity.stop_after_attempt(attempts)
    )
    if stopping is not None:
        stop = stop | tenacity.stop_when_event_set(stopping)  # type: ignore[arg-type]

    async def sleep(seconds: float) -> None:
        if stopping is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), seconds)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            error = state.outcome.exception()
            if error is not None:
                on_retry(error, state.upcoming_sleep)

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(on),
        wait=backoff.strategy(),
        stop=stop,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )

    async def attempt() -> T:  # a coroutine function, also for a lambda returning an awaitable
        return await call()

    return await retrying(attempt)
