"""JSON-lines logging to stdout, one object per line, with the current request id.

Lines are written per turn of the worker's event loop (core/turns.py): one write() for
all the lines of a turn, in the order they were logged; at once outside the server."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections import deque
from contextvars import ContextVar
from random import getrandbits
from typing import Any, Final, TextIO

from .turns import Batch

REQUEST_ID_HEADER: Final = "X-Request-ID"
_MAX_REQUEST_ID_LENGTH: Final = 128

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged too.
_RESERVED: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

# Built once: json.dumps with options builds a new encoder on every call.
_encode: Final = json.JSONEncoder(default=str, ensure_ascii=False).encode
# A string as JSON (what `_encode` does for one, without its dispatch).
_string: Final = json.encoder.encode_basestring
# A timestamp's end from its milliseconds: a lookup instead of formatting, on every line.
_MILLIS: Final = tuple(f".{milli:03d}+00:00" for milli in range(1000))


def _value(value: Any) -> str:
    """One value as JSON: the common types directly, the rest through the encoder."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    if value is None:
        return "null"
    return _encode(value)


def resolve_request_id(incoming: str | None) -> str:
    """Reuse a caller's request id when it is sane, otherwise make a new one."""
    if (
        incoming
        and len(incoming) <= _MAX_REQUEST_ID_LENGTH
        and incoming.isascii()
        and incoming.isprintable()
    ):
        return incoming
    # 128 random bits, like a UUID4, without building one or a system call per request
    # (`random` reseeds in every forked worker; an id needs to be unique, not secret).
    return getrandbits(128).to_bytes(16).hex()


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: timestamp, level, logger, message, service,
    version, request_id, then the record's extra attributes by name.

    The line is joined from its parts rather than built as a dict and encoded: the same
    JSON at half the cost, which every request pays for its access line."""

    def __init__(self, *, service: str, version: str) -> None:
        super().__init__()
        self._static = f', "service": {_string(service)}, "version": {_string(version)}'
        self._second: tuple[int, str] = (-1, "")

    def _timestamp(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds; the part up to the second is formatted once a second."""
        millis = int(created * 1000)
        second, milli = divmod(millis, 1000)
        cached = self._second  # one tuple: threads never see a torn update
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = cached
        return cached[1] + _MILLIS[milli]

    def _head(self, created: float, level: str, logger: str, message: str) -> str:
        """The line up to its extra attributes: the keys every line has."""
        request_id = request_id_var.get()
        return (
            f'{{"timestamp": "{self._timestamp(created)}", '
            f'"level": {_value(level)}, "logger": {_value(logger)}, '
            f'"message": {_string(message)}{self._static}, '
            f'"request_id": {"null" if request_id is None else _string(request_id)}'
        )

    def access_line(
        self,
        created: float,
        request_id: str | None,
        method: str,
        path: str,
        route: str | None,
        status: int,
        duration_ms: float,
    ) -> str:
        """What `format` makes of the access logger's record of one request (core/access.py),
        without a record: the same keys, values and order, in one go."""
        return (
            f'{{"timestamp": "{self._timestamp(created)}", "level": "INFO", "logger": "access", '
            f'"message": {_string(f"{method} {path} {status}")}{self._static}, '
            f'"request_id": {"null" if request_id is None else _string(request_id)}, '
            f'"duration_ms": {_value(duration_ms)}, "method": {_string(method)}, '
            f'"path": {_string(path)}, "route": {"null" if route is None else _string(route)}, '
            f'"status": {int.__repr__(status)}}}'
        )

    def format(self, record: logging.LogRecord) -> str:
        parts = [self._head(record.created, record.levelname, record.name, record.getMessage())]
        attributes = record.__dict__
        extras = attributes.keys() - _RESERVED
        if extras:
            for key in sorted(extras):
                if not key.startswith("_"):
                    parts.append(f", {_string(key)}: {_value(attributes[key])}")
        if record.exc_info:
            parts.append(f', "exception": {_string(self.formatException(record.exc_info))}')
        parts.append("}")
        return "".join(parts)


class JsonLinesHandler(logging.Handler):
    """Writes each record as one JSON line to `stream`, batched per loop turn (core/turns.py),
    and the access lines of core/access.py (`write_access`), which need no record."""

    formatter: JsonFormatter

    def __init__(self, stream: TextIO, formatter: JsonFormatter) -> None:
        super().__init__()
        self.stream = stream
        self.setFormatter(formatter)
        # Formatted lines, and the parts of access lines; append and popleft are thread-safe.
        self._lines: deque[str | tuple[Any, ...]] = deque()
        self._batch = Batch(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # logging's own contract: report, never raise
            self.handleError(record)
            return
        self._lines.append(line)
        self._batch.soon()

    def write_access(
        self, method: str, path: str, route: str | None, status: int, duration_ms: float
    ) -> None:
        """The access line of one request: its parts now, the line itself when the batch is
        written (`JsonFormatter.access_line`), all of the turn's lines in one go."""
        self._lines.append(
            (time.time(), request_id_var.get(), method, path, route, status, duration_ms)
        )
        self._batch.soon()

    def flush(self) -> None:
        lines = self._lines
        if not lines:
            return
        with self.lock:  # type: ignore[union-attr]  # set by Handler.__init__
            if not lines:
                return
            access = self.formatter.access_line
            items = [lines.popleft() for _ in range(len(lines))]
            text = "\n".join([i if type(i) is str else access(*i) for i in items]) + "\n"
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError) as error:  # stdout closed or broken: say so
                sys.stderr.write(f"log lines lost writing to stdout: {error!r}\n")


def line_handler(logger: logging.Logger) -> JsonLinesHandler | None:
    """The JSON lines handler when it is the only place `logger`'s INFO records go, as
    `configure_logging` sets up; None when anything else would see them (a test's caplog,
    a handler or filter of its own), which then gets real records."""
    if logger.handlers or logger.filters or not logger.propagate:
        return None
    root = logging.root
    handlers = root.handlers
    if len(handlers) != 1 or root.filters:
        return None
    handler = handlers[0]
    if type(handler) is not JsonLinesHandler or handler.filters or handler.level > logging.INFO:
        return None
    return handler


def configure_logging(*, level: str, service: str, version: str) -> None:
    """Send every logger, the server's included, to stdout through the JSON formatter."""
    handler = JsonLinesHandler(sys.stdout, JsonFormatter(service=service, version=version))
    root = logging.getLogger()
    for previous in root.handlers:
        previous.flush()  # lines still waiting for their loop turn go out first
    root.handlers[:] = [handler]
    root.setLevel(level)
    # No line carries the thread, process or process name: skip looking them up per record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
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
