"""JSON-lines logging to stdout, one object per line, with the current request id."""

from __future__ import annotations

import json
import logging
import secrets
import sys
import time
from contextvars import ContextVar
from typing import Any, Final

REQUEST_ID_HEADER: Final = "X-Request-ID"
_MAX_REQUEST_ID_LENGTH: Final = 128

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged too.
_RESERVED: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

# Built once: json.dumps with options builds a new encoder on every call.
_encode: Final = json.JSONEncoder(default=str, ensure_ascii=False).encode


def resolve_request_id(incoming: str | None) -> str:
    """Reuse a caller's request id when it is sane, otherwise make a new one."""
    if (
        incoming
        and len(incoming) <= _MAX_REQUEST_ID_LENGTH
        and incoming.isascii()
        and incoming.isprintable()
    ):
        return incoming
    return secrets.token_hex(16)  # 128 random bits, like a UUID4, without building one


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: timestamp, level, logger, message, ... ."""

    def __init__(self, *, service: str, version: str) -> None:
        super().__init__()
        self._static = {"service": service, "version": version}
        self._second: tuple[int, str] = (-1, "")

    def _timestamp(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds; the part up to the second is formatted once a second."""
        second = int(created)
        cached = self._second  # one tuple: threads never see a torn update
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = cached
        return f"{cached[1]}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self._static,
            "request_id": request_id_var.get(),
        }
        attributes = record.__dict__
        extras = attributes.keys() - _RESERVED
        if extras:
            for key in sorted(extras):
                if not key.startswith("_"):
                    entry[key] = attributes[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry)


def configure_logging(*, level: str, service: str, version: str) -> None:
    """Send every logger, the server's included, to stdout through the JSON formatter."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service=service, version=version))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Servers' own loggers carry handlers of their own: make them propagate to ours.
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error", "gunicorn.access"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    # The app writes one access line per request, with the request id; uvicorn's own would
    # be a second line (uvicorn logs access whenever this logger has a handler, even via root).
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
