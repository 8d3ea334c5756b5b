"""A TCP relay a test controls: put it between a service and a real server, then cut it.

`cut()` closes every relayed connection and refuses new ones (a server that vanished);
`hang()` accepts connections and never answers, and stalls the ones open (a server that
hangs, or a network that drops every packet); `restore()` relays again on the same port,
after a hang closing the connections it never answered. `delay` adds latency to every
chunk it forwards (a slow network), so a fast consumer can be caught in the middle of a batch.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType


class TcpRelay:
    def __init__(self, target: tuple[str, int], *, delay: float = 0.0) -> None:
        self.target = target
        self.delay = delay
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener: socket.socket | None = listener
        self.port = int(listener.getsockname()[1])
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        self._flowing = threading.Event()  # cleared while hanging
        self._flowing.set()
        self._held: set[socket.socket] = set()  # accepted while hanging, never answered
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def url(self, url: str) -> str:
        """`url` (scheme://[credentials@]host:port/...) pointed at this relay."""
        scheme, rest = url.split("://", 1)
        netloc, _, path = rest.partition("/")
        credentials = netloc.rpartition("@")[0]
        host = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return f"{scheme}://{host}/{path}"

    def cut(self) -> None:
        """Close every relayed connection and refuse new ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets | self._held, set()
            self._held = set()
        if listener is not None:
            _close(listener)
        for sock in sockets:
            _close(sock)

    def hang(self) -> None:
        """Accept connections and never answer them; stall the open ones."""
        self._flowing.clear()
        self._listen()

    def restore(self) -> None:
        with self._lock:
            held, self._held = self._held, set()
            self._flowing.set()
        for sock in held:
            _close(sock)
        self._listen()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._flowing.set()  # stalled pumps see their sockets closed and end

    def _listen(self) -> None:
        with self._lock:
            if self._listener is not None or self._closed:
                return
            listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def __enter__(self) -> TcpRelay:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self, listener: socket.socket) -> None:
        listener.settimeout(0.1)  # a blocked accept() doesn't notice close(): poll
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by cut()
                return
            client.settimeout(None)
            with self._lock:
                if not self._flowing.is_set():
                    self._held.add(client)
                    continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _close(client)
                    _close(upstream)
                    continue
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                self._flowing.wait()
                if self.delay:
                    time.sleep(self.delay)
                sink.sendall(data)
        for sock in (source, sink):
            _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
