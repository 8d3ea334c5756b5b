"""Slow clients cannot hold the server: a request's headers, then its body, must arrive in time.

Both run in the worker's event loop, so a connection that trickles its bytes costs a socket
and a buffer, never a thread or a worker; past REQUEST_READ_TIMEOUT it is cut.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .http_errors import error_body

# ASGI's callables, spelled out: this module serves both frameworks and imports neither.
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Any
Send = Any
App = Any


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, closing a connection whose request headers are not complete
    `header_timeout` seconds after it opened or after its previous response.

    One timer per connection, not one per request: a response only notes when the
    connection went idle; when the timer fires before that wait has run its course, it is
    set again for what is left."""

    header_timeout: ClassVar[float] = 10.0
    _deadline: asyncio.TimerHandle | None = None
    _waiting_since: float | None = None  # loop time it began waiting for headers; None: busy

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._waiting_since = self.loop.time()
        self._deadline = self.loop.call_later(self.header_timeout, self._check)

    def on_headers_complete(self) -> None:
        self._waiting_since = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Idle again, unless a pipelined request (headers already in) has just started.
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._waiting_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def _check(self) -> None:
        since = self._waiting_since
        left = self.header_timeout
        if since is not None:
            left += since - self.loop.time()
        if left <= 0:
            self._deadline = None
            self.transport.close()
        else:
            self._deadline = self.loop.call_later(left, self._check)


_FRAMING = (b"content-length", b"transfer-encoding")


class BufferedBody:
    """ASGI middleware: reads each request's body whole, within `timeout` seconds, before the
    app sees the request, and hands it on with a Content-Length (chunked bodies included).

    Past `max_bytes` it stops reading and hands on the first `max_bytes + 1` bytes with that
    length, so the app's own limit answers 413, and the connection closes after the answer.
    A body not received in time gets 408 and the connection is closed.
    """

    def __init__(self, app: App, *, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        for name, _ in headers:
            if name in _FRAMING:
                break
        else:  # no Content-Length or Transfer-Encoding: there is no body to wait for
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in headers if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            body, complete = b"", False  # refused unread: the app answers 413 from the header
        else:
            try:
                async with asyncio.timeout(self.timeout):
                    read = await self._read(receive)
            except TimeoutError:
                await _answer_timeout(send, self.timeout)
                return
            if read is None:
                return  # the client went away: nobody to answer
            body, complete = read
            length = str(len(body)).encode()
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                message: Message = await receive()  # http.disconnect, when the client goes
                return message
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        unframed = [(k, v) for k, v in headers if k not in _FRAMING]
        scope = {**scope, "headers": [*unframed, (b"content-length", length)]}
        await self.app(scope, replay, send if complete else closing)

    async def _read(self, receive: Receive) -> tuple[bytes, bool] | None:
        """The body and whether it is whole (False: cut at `max_bytes + 1`); None if the
        client went away first."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_bytes:
                return b"".join(chunks)[: self.max_bytes + 1], False
            if not message.get("more_body", False):
                return b"".join(chunks), True


async def _answer_timeout(send: Send, seconds: float) -> None:
    body = json.dumps(error_body(f"the body did not arrive within {seconds:g}s")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
