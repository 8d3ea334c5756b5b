"""The host's ports: a pod shares the host network, so rehearsals on this machine take turns."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

#: How long to wait for another process on this machine to free the pod's ports.
PORT_WAIT_SECONDS = 120.0


@contextlib.contextmanager
def port_locks(ports: Sequence[int]) -> Iterator[None]:
    """Rehearsals on this machine take turns per port (pods share the host's network)."""
    folder = Path(tempfile.gettempdir()) / "svcgen-rehearse-ports"
    folder.mkdir(exist_ok=True)
    handles = []
    try:
        for port in sorted(set(ports)):
            handle = (folder / f"{port}.lock").open("w")
            handles.append(handle)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        for handle in reversed(handles):
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True
