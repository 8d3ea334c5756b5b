"""Health model with Kubernetes semantics.

- liveness: the process is up and serving (never checks dependencies);
- startup: the application finished starting;
- readiness: started, not draining, and every registered dependency check passes.

Checks run concurrently, each bounded by a timeout, so one slow dependency can't
hold the probe past its own timeout. Blocking checks run in threads of their own pool,
which nothing waits for: a check that hangs past the timeout finishes (by its client's
own timeout) after the probe has answered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import lifecycle

Check = Callable[[], Awaitable[object]]
Detail = Callable[[], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Report:
    """Outcome of a probe: HTTP status code, a JSON-ready body, and that body as JSON."""

    status_code: int
    body: dict[str, Any]
    json: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Encoded once: the probes that answer the same every time answer a constant.
        object.__setattr__(self, "json", json.dumps(self.body, separators=(",", ":")).encode())


_PASS = Report(200, {"status": "pass"})
_STARTING = Report(503, {"status": "fail", "failing": ["starting"]})


@dataclass
class HealthChecks:
    """Named dependency checks that readiness runs."""

    timeout: float
    checks: dict[str, Check] = field(default_factory=dict)
    details: dict[str, Detail] = field(default_factory=dict)
    # Not the event loop's default executor: `asyncio.run()` waits for that one's threads.
    _threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(thread_name_prefix="health-check"),
        init=False,
        repr=False,
    )
    _abandoned: set[asyncio.Future[object]] = field(default_factory=set, init=False, repr=False)

    def register(self, name: str, check: Check, detail: Detail | None = None) -> None:
        """Register a check; `detail()` adds fields to its result (e.g. its circuit breaker)."""
        self.checks[name] = check
        if detail is not None:
            self.details[name] = detail

    def register_sync(
        self, name: str, check: Callable[[], object], detail: Detail | None = None
    ) -> None:
        """Register a blocking check; it runs in a thread of the checks' own pool."""

        async def run_in_thread() -> object:
            return await asyncio.get_running_loop().run_in_executor(self._threads, check)

        self.register(name, run_in_thread, detail)

    async def _run(self, name: str, check: Check) -> dict[str, Any]:
        started = time.perf_counter()
        result: dict[str, Any]
        try:
            await self._within_timeout(check)
        except TimeoutError:
            result = {"status": "fail", "error": f"timed out after {self.timeout:g}s"}
        except Exception as exc:  # any failure means not ready
            # A dependency error names its cause already (core/errors.py); others get their type.
            named = getattr(exc, "reason", None) is not None
            error = str(exc) if named else f"{type(exc).__name__}: {exc}"
            result = {"status": "fail", "error": error}
        else:
            result = {"status": "pass"}
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        if name in self.details:
            result.update(self.details[name]())
        return result

    async def _within_timeout(self, check: Check) -> None:
        """Await `check()` for at most the timeout. Past it, cancel it without waiting for it
        to end, unlike `asyncio.wait_for`: a client cleaning up after a cancel (psycopg
        cancelling its query) may itself wait for the server that doesn't answer."""
        task = asyncio.ensure_future(check())
        done, _ = await asyncio.wait({task}, timeout=self.timeout)
        if not done:
            task.cancel()
            self._abandoned.add(task)  # keep a reference until it ends
            task.add_done_callback(self._forget)
            raise TimeoutError
        task.result()  # the check's error, if it failed

    def _forget(self, task: asyncio.Future[object]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # seen: nobody waits for it any more

    async def readiness(self) -> Report:
        if lifecycle.is_draining():
            # Answer at once: the pod is leaving whatever its dependencies say.
            return Report(503, {"status": "fail", "checks": {}, "failing": ["draining"]})
        names = list(self.checks)
        results = await asyncio.gather(*(self._run(n, self.checks[n]) for n in names))
        checks = dict(zip(names, results, strict=True))
        failing = [name for name, result in checks.items() if result["status"] != "pass"]
        if not lifecycle.is_started():
            failing.insert(0, "starting")
        status = "fail" if failing else "pass"
        body: dict[str, Any] = {"status": status, "checks": checks}
        if failing:
            body["failing"] = failing
        return Report(503 if failing else 200, body)


def liveness() -> Report:
    return _PASS


def startup() -> Report:
    return _PASS if lifecycle.is_started() else _STARTING
