"""Several chat requests streamed at once, each on a worker thread, onto one queue.

The main thread of a kernel must stay free to receive the stop button (SIGINT raises
``KeyboardInterrupt`` there and only there), so the streams are read by worker threads,
each with a client of its own running the ordinary synchronous stream
(``client.stream_chat``), and the main thread takes what they read off a :class:`Board`:
``(column, item)`` pairs, where an item is a stream event, :class:`Opened` (the
generation id, known before any event), :class:`Refused` (an error before the answer
began), :class:`Crashed` (a bug, to raise in the main thread) and finally :class:`Ended`.
:meth:`Board.stop` ends every stream from the main thread at once.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from ..client.http import ChatRequest, EventStream, OpenRouterClient
from ..client.settings import ClientSettings
from ..errors import OrmagicError
from ..events import Event

__all__ = ["Board", "Crashed", "Ended", "Item", "Opened", "Refused", "pump"]


class _Stopped(Exception):
    """Raised in a worker waiting to retry once the question was stopped."""


@dataclass(frozen=True)
class Opened:
    """The response began: its generation id (``X-Generation-Id``), before any event."""

    generation_id: str | None


@dataclass(frozen=True)
class Refused:
    """An error before the answer began (a 402, a 5xx): nothing streamed."""

    error: OrmagicError


@dataclass(frozen=True)
class Crashed:
    """A bug in a worker: the main thread raises it again."""

    error: BaseException


@dataclass(frozen=True)
class Ended:
    """A worker is done: its stream is closed."""


_ENDED = Ended()
Item = Event | Opened | Refused | Crashed | Ended


class Board:
    """What the workers and the main thread share: a queue, a stop flag, open streams."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[int, Item]] = queue.Queue()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._streams: dict[int, EventStream] = {}

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def put(self, column: int, item: Item) -> None:
        self.queue.put((column, item))

    def opened(self, column: int, stream: EventStream) -> bool:
        """Register an open stream; False when the question was stopped meanwhile."""
        with self._lock:
            if self._stopped.is_set():
                return False
            self._streams[column] = stream
            return True

    def closed(self, column: int) -> None:
        with self._lock:
            self._streams.pop(column, None)

    def stop(self) -> None:
        """Stop every stream now, from the main thread (idempotent)."""
        with self._lock:
            self._stopped.set()
            streams = list(self._streams.values())
        for stream in streams:
            stream.abort()

    def sleep(self, seconds: float) -> None:
        """The client's wait before a retry, cut short (and not retried) once stopped."""
        if self._stopped.wait(seconds):
            raise _Stopped


def pump(settings: ClientSettings, request: ChatRequest, column: int, board: Board) -> None:
    """A worker: stream one model's answer onto the board.

    Each worker has a client of its own, so that aborting one stream can never touch a
    pooled connection another stream is using.
    """
    client = OpenRouterClient(settings, sleep=board.sleep)
    try:
        with client.stream_chat(request) as events:
            if not board.opened(column, events):
                return
            board.put(column, Opened(events.generation_id))
            for event in events:
                if board.stopped:
                    return
                board.put(column, event)
    except _Stopped:
        pass
    except OrmagicError as error:  # refused before the answer began: this column only
        board.put(column, Refused(error))
    except BaseException as error:  # not ours to swallow: the main thread raises it
        board.put(column, Crashed(error))
    finally:
        board.closed(column)
        client.close()
        board.put(column, _ENDED)
