"""Process lifecycle: started, then draining once SIGTERM arrives.

Signals reach a process, so this state is per process by nature. The draining
flag lives in anonymous shared memory: the server's master process sets it and
the workers it forked, which answer the probes, see it.
"""

from __future__ import annotations

import mmap
import threading

_started = threading.Event()
_draining = mmap.mmap(-1, 1)  # one shared byte, inherited across fork


def mark_started() -> None:
    _started.set()


def start_draining() -> None:
    _draining[0] = 1


def is_started() -> bool:
    return _started.is_set()


def is_draining() -> bool:
    return _draining[0] == 1


def reset() -> None:
    """Back to a freshly started process (for tests)."""
    _started.clear()
    _draining[0] = 0
