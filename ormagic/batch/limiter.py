"""How many requests a batch keeps in flight: additive increase, multiplicative decrease.

A 429 halves the limit for the whole batch (at most once per round of requests: answers to
requests sent before the cut do not cut again) and pauses every new request until the
server's ``Retry-After`` has passed, or a growing backoff when it gave none. Each success
adds about one request per round (``1 / limit``) until the ceiling, the batch's
``concurrency``. docs/openrouter-tools.md §4: bound concurrency, adapt down on 429,
honour ``Retry-After``, add jitter. :meth:`AdaptiveLimit.close` (the batch stopped) ends
every wait at once: :meth:`~AdaptiveLimit.acquire` raises :class:`LimitClosed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

__all__ = ["AdaptiveLimit", "LimitClosed"]

Clock = Callable[[], float]


class LimitClosed(Exception):
    """The batch stopped while a request waited for a slot: it is not sent."""


class AdaptiveLimit:
    """An AIMD limit on requests in flight, for one asyncio loop."""

    def __init__(
        self,
        ceiling: int,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        max_pause: float = 600.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = float(self.ceiling)
        self.in_flight = 0
        self.paused_until = 0.0
        self.cuts = 0
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._max_pause = max_pause
        self._clock = clock
        self._last_cut = float("-inf")
        self._streak = 0  # 429s since the last success, for the backoff without Retry-After
        self._freed = asyncio.Event()
        self._closed = False

    async def acquire(self) -> float:
        """Wait for a slot (and the end of any pause); return when the request goes out."""
        while True:
            if self._closed:
                raise LimitClosed()
            now = self._clock()
            if now < self.paused_until:
                self._freed.clear()
                with contextlib.suppress(asyncio.TimeoutError):  # the pause is over
                    await asyncio.wait_for(self._freed.wait(), self.paused_until - now)
                continue
            if self.in_flight < max(1, int(self.limit)):
                self.in_flight += 1
                return now
            self._freed.clear()
            await self._freed.wait()

    def close(self) -> None:
        """No more requests: every wait ends with :class:`LimitClosed`."""
        self._closed = True
        self._freed.set()

    def release(self) -> None:
        self.in_flight -= 1
        self._freed.set()

    def succeeded(self) -> None:
        """Additive increase: about one more in flight per round of answers."""
        self._streak = 0
        self.limit = min(float(self.ceiling), self.limit + 1.0 / max(self.limit, 1.0))

    def rate_limited(self, retry_after: float | None, sent_at: float) -> float:
        """A 429 for a request sent at ``sent_at``: cut the limit once per round and pause.

        Returns the pause in seconds.
        """
        now = self._clock()
        if sent_at >= self._last_cut:
            self.limit = max(1.0, self.limit / 2)
            self._last_cut = now
            self.cuts += 1
        self._streak += 1
        if retry_after is None:
            wait = min(self._backoff_initial * 2.0 ** (self._streak - 1), self._backoff_max)
            wait *= 1 + random.random() * 0.25  # jitter: rows do not all come back at once
        else:
            wait = retry_after
        wait = min(wait, self._max_pause)
        self.paused_until = max(self.paused_until, now + wait)
        self._freed.set()  # waiters re-check: the pause applies to them too
        return wait
