"""Run a batch's asyncio loop in a thread of its own, while the calling thread waits.

In a kernel the main thread already runs an asyncio loop (``asyncio.run`` fails there) and
the stop button arrives as ``KeyboardInterrupt`` in the main thread only
(docs/jupyter-notes.md "Interrupts"). So the loop runs in a worker thread and the caller
waits in short, interruptible steps, redrawing the progress between them. On an interrupt
the loop's task is cancelled: requests in flight are abandoned and their connections
closed, then the interrupt goes on to the caller. A script or a Dask worker, with no loop
of its own, goes the same way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar, cast

__all__ = ["run_in_loop_thread"]

T = TypeVar("T")

_TICK = 0.2  # seconds between two progress redraws while waiting
_CANCEL_WAIT = 5.0  # how long an interrupt waits for the loop to close its connections


class _LoopThread(Generic[T]):
    def __init__(self, make: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._make = make
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[T] | None = None
        self._lock = threading.Lock()
        self._cancelled = False
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None

    def main(self) -> None:
        try:
            self.value = asyncio.run(self._run())
        except BaseException as error:  # handed to the waiting thread, which re-raises it
            self.error = error
        finally:
            self.done.set()

    async def _run(self) -> T:
        task = asyncio.ensure_future(self._make())
        with self._lock:
            self._loop, self._task = asyncio.get_running_loop(), task
            if self._cancelled:
                task.cancel()
        return await task

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._loop is not None and self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)


def run_in_loop_thread(
    make: Callable[[], Coroutine[Any, Any, T]],
    *,
    on_tick: Callable[[], None] | None = None,
    tick: float = _TICK,
) -> T:
    """Run ``make()`` on a new loop in a daemon thread; call ``on_tick`` while waiting.

    An interrupt (or any exception) in the waiting thread cancels the coroutine, waits a
    moment for it to clean up, and is re-raised. An exception from the coroutine is
    re-raised here.
    """
    runner: _LoopThread[T] = _LoopThread(make)
    thread = threading.Thread(target=runner.main, name="ormagic-batch", daemon=True)
    thread.start()
    try:
        while not runner.done.wait(tick):
            if on_tick is not None:
                on_tick()
    except BaseException:
        runner.cancel()
        runner.done.wait(_CANCEL_WAIT)
        raise
    if runner.error is not None:
        raise runner.error
    return cast(T, runner.value)
