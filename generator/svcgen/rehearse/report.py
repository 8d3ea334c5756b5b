"""The rehearsal's report: one line per step, PASS or FAIL with the reason (or information)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit


@dataclass
class Step:
    """One line of the report: `ok` None is information, not a check."""

    ok: bool | None
    subject: str
    action: str
    detail: str

    def line(self) -> str:
        mark = {True: "PASS", False: "FAIL", None: "    "}[self.ok]
        return f"{mark}  {self.subject:<28} {self.action:<10} {self.detail}"


class Report:
    """Steps in order, printed as they happen (pods run in parallel: lines are whole)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out
        self.steps: list[Step] = []
        self._lock = threading.Lock()

    def add(self, ok: bool | None, subject: str, action: str, detail: str) -> Step:
        step = Step(ok, subject, action, detail)
        with self._lock:
            self.steps.append(step)
            if self.out is not None:
                print(step.line(), file=self.out, flush=True)
        return step

    def info(self, subject: str, action: str, detail: str) -> None:
        self.add(None, subject, action, detail)

    def log(self, subject: str, text: str) -> None:
        """A container's last output lines, indented under its failure."""
        for line in text.strip().splitlines()[-12:]:
            self.info(subject, "log", line)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok is not False for step in self.steps)

    @property
    def failures(self) -> list[Step]:
        return [step for step in self.steps if step.ok is False]

    def text(self) -> str:
        return "\n".join(step.line() for step in self.steps)


class RehearsalError(RuntimeError):
    """The rehearsal cannot go on (reported as a FAIL line)."""


def mask(value: str) -> str:
    """A URL's password hidden, for printing overrides."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return value


def last_error(log: str) -> str:
    """The last line that looks like an error, to name the cause in one line."""
    lines = [line.strip() for line in log.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.search(
            r"error|exception|denied|read-only|not found|no such|invalid|failed", line, re.I
        ):
            return f": {line[:300]}"
    return f": {lines[-1][:300]}" if lines else ""
