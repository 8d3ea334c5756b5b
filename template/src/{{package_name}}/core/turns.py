"""Per-request bookkeeping done once per turn of the worker's event loop, not per request.

Access lines and metric samples are collected as requests finish and written out once per
turn of the event loop (a batch of requests under load, each request alone when idle): one
write() for all the turn's lines, one update of the shared metric files per label set.
The server's worker attaches its loop (server.py); until then, and after it detaches when
the loop stops, every batch is flushed at once, as it is filled: tests, the CLI, the
server's master. Detaching, and the interpreter's exit, flush what is pending, so a drained
worker loses no line.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from collections.abc import Callable

_loop: asyncio.AbstractEventLoop | None = None
_loop_thread: int | None = None
_batches: weakref.WeakSet[Batch] = weakref.WeakSet()


class Batch:
    """Calls `flush` at the end of the loop turn in which `soon` was first called (from any
    thread), or at once when no loop is attached. `flush` must take what is pending itself."""

    __slots__ = ("__weakref__", "_flush", "_scheduled")

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        self._scheduled = False
        _batches.add(self)

    def soon(self) -> None:
        loop = _loop
        if loop is None:
            self._flush()
            return
        if self._scheduled:
            return
        self._scheduled = True
        try:
            if threading.get_ident() == _loop_thread:
                loop.call_soon(self.run)
            else:  # a WSGI thread: wakes the loop once per batch
                loop.call_soon_threadsafe(self.run)
        except RuntimeError:  # the loop closed meanwhile
            self.run()

    def run(self) -> None:
        # Cleared first: whatever comes in while flushing schedules the next flush.
        self._scheduled = False
        self._flush()


def attach(loop: asyncio.AbstractEventLoop) -> None:
    """Batch per turn of `loop` (call from its thread) until `detach`."""
    global _loop, _loop_thread
    _loop_thread = threading.get_ident()
    _loop = loop


def detach() -> None:
    """Back to flushing at once; flushes every batch's pending work now."""
    global _loop, _loop_thread
    _loop = _loop_thread = None
    flush_all()


def flush_all() -> None:
    for batch in list(_batches):
        batch.run()


atexit.register(flush_all)
