"""Pure ASGI middleware, one layer for what every request needs: its id in and out, the
body size limit, and one access record (log line, metrics) once it is answered."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.access import AccessRecorder
from ..core.http_errors import error_body, too_large
from ..core.logging import REQUEST_ID_HEADER, request_id_var, resolve_request_id

_REQUEST_ID_HEADER = REQUEST_ID_HEADER.lower().encode()


class RequestContextMiddleware:
    """Request id in and out, 413 for a body over `max_bytes`, one access record per request.

    The limit answers at once when Content-Length says so, else (a chunked body) as soon as
    the bytes received pass it, before the body is read whole."""

    def __init__(self, app: ASGIApp, recorder: AccessRecorder, max_bytes: int) -> None:
        self.app = app
        self.recorder = recorder
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.recorder.start()
        incoming = length = None
        chunked = False
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_HEADER:
                incoming = value
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        request_id = resolve_request_id(incoming.decode("latin-1") if incoming else None)
        token = request_id_var.set(request_id)
        status = 500

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (_REQUEST_ID_HEADER, request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                response = JSONResponse(error_body(too_large(self.max_bytes)), status_code=413)
                await response(scope, receive, send_with_request_id)
            elif chunked:
                await self.app(scope, self._limited(receive), send_with_request_id)
            else:  # no body, or one its Content-Length has vouched for
                await self.app(scope, receive, send_with_request_id)
        finally:
            self.recorder.record(
                method=scope["method"],
                path=scope["path"],
                route=_route_template(scope),
                status=status,
                started=started,
            )
            request_id_var.reset(token)

    def _limited(self, receive: Receive) -> Receive:
        """`receive`, raising 413 once the body received passes the limit."""
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # FastAPI passes an HTTPException raised while reading the body through.
                raise HTTPException(413, too_large(self.max_bytes))
            return message

        return limited


def _route_template(scope: Scope) -> str | None:
    """The matched route's path template. Routes FastAPI adds itself (/docs, /redoc,
    /openapi.json) leave no `route` in the scope, only their endpoint."""
    route = scope.get("route")
    if route is not None:
        return getattr(route, "path", None)
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return None
    routes: list[BaseRoute] = scope["app"].routes
    return next((r.path for r in routes if getattr(r, "endpoint", None) is endpoint), None)  # type: ignore[attr-defined]
