"""Pure ASGI middleware: the request id and one access record (log line, metrics) per
request, and the request body's size limit."""

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
    """Pure ASGI middleware: request id in and out, then one access record per request."""

    def __init__(self, app: ASGIApp, recorder: AccessRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.recorder.start()
        incoming = next((v for k, v in scope["headers"] if k == _REQUEST_ID_HEADER), None)
        request_id = resolve_request_id(incoming.decode("latin-1") if incoming else None)
        token = request_id_var.set(request_id)
        status = 500

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (_REQUEST_ID_HEADER, request_id.encode("latin-1")),
                ]
            await send(message)

        try:
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


class BodyLimitMiddleware:
    """413 for a body over `max_bytes`: at once when Content-Length says so, else as soon as
    the bytes received pass the limit (chunked bodies), before the body is read whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse(error_body(too_large(self.max_bytes)), status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # FastAPI passes an HTTPException raised while reading the body through.
                raise HTTPException(413, too_large(self.max_bytes))
            return message

        await self.app(scope, limited, send)
