"""Decode, inference and encode overlapped: a reader thread ahead, a writer thread behind.

PyAV releases the GIL while FFmpeg decodes, converts and encodes, and torch
releases it inside its operators, so a thread on each side of the network
keeps the decoder and the encoder busy while the network runs. Both queues
are bounded (memory stays flat whatever the film's length) and both keep the
order of the frames exactly: one producer, one consumer, FIFO.

An exception on either side is not lost: a reader error is raised by the
iterator at the point it happened in the stream, a writer error by the next
``put`` or by ``close``.

A queue is bounded by items (``depth``) or, with ``max_bytes``, by the bytes
its items hold (``size_of``): a batch of 1080p frames and a batch of
thumbnails then take the same memory, not the same count. Each side adds up
the seconds its thread spent working (``busy_seconds``), so a caller can see
how much the stages overlapped.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

Item = TypeVar("Item")

_END = object()  # the producer is done
# How often a blocked put/get wakes to see whether the other side gave up (seconds).
_POLL_S = 0.1


class ByteQueue:
    """A FIFO of one producer and one consumer, bounded by item count and, optionally, by bytes.

    An item is always taken into an empty queue, however large, so one item
    over the limit cannot block the stream; otherwise ``put`` waits while the
    queue would hold more than ``max_bytes`` (or ``max_items``) with it.
    """

    def __init__(self, max_items: int | None = None, max_bytes: int | None = None,
                 size_of: Callable[[object], int] | None = None):
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.size_of = size_of or (lambda item: 0)
        self.bytes = 0
        self.peak_bytes = 0
        self._items: collections.deque = collections.deque()
        self._changed = threading.Condition()

    def _full(self, size: int) -> bool:
        if not self._items:
            return False
        if self.max_items is not None and len(self._items) >= self.max_items:
            return True
        return self.max_bytes is not None and self.bytes + size > self.max_bytes

    def put(self, item, timeout: float | None = None) -> None:
        size = self.size_of(item) if item is not _END and not isinstance(item, _Failure) else 0
        with self._changed:
            if not self._changed.wait_for(lambda: not self._full(size), timeout):
                raise queue.Full
            self._items.append((item, size))
            self.bytes += size
            self.peak_bytes = max(self.peak_bytes, self.bytes)
            self._changed.notify_all()

    def get(self, timeout: float | None = None):
        with self._changed:
            if not self._changed.wait_for(lambda: bool(self._items), timeout):
                raise queue.Empty
            item, size = self._items.popleft()
            self.bytes -= size
            self._changed.notify_all()
            return item


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher(Generic[Item]):
    """Iterate over ``source`` in a background thread, ``depth`` items ahead.

    Use as a context manager (or call ``close``): leaving early stops the
    thread and closes ``source`` if it is a generator. The items come out in
    the order ``source`` yields them; an exception in ``source`` is raised
    here, after the items before it.
    """

    def __init__(self, source: Iterable[Item], depth: int | None = 16, name: str = "facecolor-reader",
                 max_bytes: int | None = None, size_of: Callable[[Item], int] | None = None):
        self._source = source
        self._queue = ByteQueue(max(1, depth) if depth else None, max_bytes, size_of)
        # seconds the thread spent producing items (not waiting for room in the queue)
        self.busy_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._finished = False
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            items = iter(self._source)
            while True:
                started = time.perf_counter()
                item = next(items, _END)
                self.busy_seconds += time.perf_counter() - started
                if item is _END:
                    break
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as error:  # handed to the consumer, raised there
            self._put(_Failure(error))
        finally:
            if self._stop.is_set():
                close = getattr(self._source, "close", None)
                if close is not None:
                    close()

    def __iter__(self) -> Iterator[Item]:
        while not self._finished:
            item = self._queue.get()
            if item is _END:
                self._finished = True
                break
            if isinstance(item, _Failure):
                self._finished = True
                raise item.error
            yield item
        self._thread.join()

    def close(self) -> None:
        """Stop reading ahead (the source is closed by the thread) and wait for the thread."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetcher[Item]:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class BackgroundWriter(Generic[Item]):
    """Call ``write(item)`` for every ``put`` item, in order, in a background thread.

    ``close()`` waits until everything put was written and raises the writer's
    exception if there was one; ``put`` raises it as soon as it is known (and
    the items put after a failure are not written). ``abort()`` drops what is
    still queued and waits for the thread, for the error path.
    """

    def __init__(self, write: Callable[[Item], None], depth: int | None = 16, name: str = "facecolor-writer",
                 max_bytes: int | None = None, size_of: Callable[[Item], int] | None = None):
        self._write = write
        self._queue = ByteQueue(max(1, depth) if depth else None, max_bytes, size_of)
        # seconds the thread spent in ``write`` (not waiting for items)
        self.busy_seconds = 0.0
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if item is _END or self._stop.is_set():
                return
            if self._error is not None:
                continue  # drain: a put after the failure must not block forever
            started = time.perf_counter()
            try:
                self._write(item)
            except BaseException as error:
                self._error = error
            finally:
                self.busy_seconds += time.perf_counter() - started

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._stop.set()
            raise error

    def put(self, item: Item) -> None:
        self._raise_if_failed()
        while True:
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                self._raise_if_failed()
                if not self._thread.is_alive():
                    raise RuntimeError("the writer thread ended unexpectedly")

    def put_all(self, items: Iterable[Item]) -> None:
        for item in items:
            self.put(item)

    def close(self) -> None:
        """Write everything still queued, stop the thread, raise its error if any."""
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> BackgroundWriter[Item]:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
