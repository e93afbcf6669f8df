"""Decode, inference and encode overlapped: a reader thread ahead, a writer thread behind.

PyAV releases the GIL while FFmpeg decodes, converts and encodes, and torch
releases it inside its operators, so a thread on each side of the network
keeps the decoder and the encoder busy while the network runs. Both queues
are bounded (memory stays flat whatever the film's length) and both keep the
order of the frames exactly: one producer, one consumer, FIFO.

An exception on either side is not lost: a reader error is raised by the
iterator at the point it happened in the stream, a writer error by the next
``put`` or by ``close``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

Item = TypeVar("Item")

_END = object()  # the producer is done
# How often a blocked put/get wakes to see whether the other side gave up (seconds).
_POLL_S = 0.1


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

    def __init__(self, source: Iterable[Item], depth: int = 16, name: str = "facecolor-reader"):
        self._source = source
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
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
            for item in self._source:
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

    def __init__(self, write: Callable[[Item], None], depth: int = 16, name: str = "facecolor-writer"):
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
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
            try:
                self._write(item)
            except BaseException as error:
                self._error = error

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
