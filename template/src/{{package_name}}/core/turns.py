"""Per-request bookkeeping done once per turn of the worker's event loop, not per request.

Access lines and metric samples are collected as requests finish and written out once per
turn of the event loop (a batch of requests under load, each request alone when idle): one
write() for all the turn's lines, one update of the shared metric files per label set.
What WSGI threads collect waits for the loop's next tick (every TICK_SECONDS) rather than
waking the loop for it: a wake-up is a system call or two, per request.
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
from collections import deque
from collections.abc import Callable

TICK_SECONDS = 0.05

_loop: asyncio.AbstractEventLoop | None = None
_loop_thread: int | None = None
_batches: weakref.WeakSet[Batch] = weakref.WeakSet()
# Batches with something to flush, and whether a flush at the end of this turn is scheduled:
# one callback per turn for all of them.
_due: deque[Batch] = deque()  # append and popleft are safe across threads
_scheduled = False


class Batch:
    """Calls `flush` at the end of the loop turn in which `soon` was first called, at the
    next tick when called from another thread, or at once when no loop is attached. `flush`
    must take what is pending itself."""

    __slots__ = ("__weakref__", "flush", "queued")

    def __init__(self, flush: Callable[[], None]) -> None:
        self.flush = flush
        self.queued = False
        _batches.add(self)

    def soon(self) -> None:
        global _scheduled
        loop = _loop
        if loop is None:
            self.flush()
            return
        if self.queued:
            return
        self.queued = True
        _due.append(self)
        if _scheduled or threading.get_ident() != _loop_thread:
            return  # a WSGI thread's batch waits for the tick
        _scheduled = True
        loop.call_soon(_run)


def _run() -> None:
    global _scheduled
    # Cleared first: whatever comes in while flushing schedules the next turn's flush.
    _scheduled = False
    for _ in range(len(_due)):
        batch = _due.popleft()
        batch.queued = False
        batch.flush()


def attach(loop: asyncio.AbstractEventLoop) -> None:
    """Batch per turn of `loop` (call from its thread) until `detach`."""
    global _loop, _loop_thread
    _loop_thread = threading.get_ident()
    _loop = loop

    def tick() -> None:
        if _loop is loop:
            _run()
            loop.call_later(TICK_SECONDS, tick)

    loop.call_later(TICK_SECONDS, tick)


def detach() -> None:
    """Back to flushing at once; flushes every batch's pending work now."""
    global _loop, _loop_thread
    _loop = _loop_thread = None
    flush_all()


def flush_all() -> None:
    _run()
    for batch in list(_batches):
        batch.flush()


atexit.register(flush_all)
