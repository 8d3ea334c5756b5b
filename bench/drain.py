"""Draining under load: SIGTERM to the server's master while clients keep requesting.

Kubernetes-like run (the check): clients keep sending to /health/live; SIGTERM goes to
the master; a prober polls /health/ready every 50 ms like the kubelet, and once it
sees 503 the "endpoint is removed" after PROPAGATION seconds (kube-proxy catching up,
shorter than DRAIN_SECONDS): clients send nothing new, requests already sent finish.
Every request sent must succeed, in flight at SIGTERM or sent during the drain alike,
and the process must exit 0 within the grace period (DRAIN_SECONDS + SHUTDOWN_TIMEOUT).

Without endpoint removal (for information): clients ignore readiness and keep going
until the listener is closed; refused connections are then expected (that is the load
balancer's job), anything else on an accepted connection counts as an in-flight failure.
Run alone: `.venv/bin/python bench/drain.py`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from harness import (
    FRAMEWORKS,
    SERVER_CPU,
    Row,
    Server,
    free_port,
    pinned,
    run_section,
    service_argv,
    service_env,
)

from tests.support import Project

CLIENTS = 16
LOAD_BEFORE_SIGTERM = 2.0
PROPAGATION = 0.5
DRAIN_SECONDS = 2.0
SHUTDOWN_TIMEOUT = 10
GRACE = DRAIN_SECONDS + SHUTDOWN_TIMEOUT


@dataclass
class Drain:
    framework: str
    honour_readiness: bool
    sent: int = 0
    ok: int = 0
    in_flight_at_sigterm: int = 0
    sent_while_draining: int = 0
    refused: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    exit_seconds: float = 0.0
    exit_code: int | None = None

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


async def _load(server: Server, result: Drain) -> None:
    base = f"http://127.0.0.1:{server.port}"
    stop = asyncio.Event()
    in_flight = 0
    term_at: float | None = None

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal in_flight
        while not stop.is_set():
            result.sent += 1
            if term_at is not None:
                result.sent_while_draining += 1
            in_flight += 1
            try:
                response = await http.get(f"{base}/health/live")
            except httpx.ConnectError:
                if result.honour_readiness:
                    result.failures["connect error"] += 1
                else:
                    result.refused += 1  # the listener is closed: the LB's job
                    return
            except httpx.HTTPError as error:
                result.failures[type(error).__name__] += 1
            else:
                if response.status_code == 200:
                    result.ok += 1
                else:
                    result.failures[f"HTTP {response.status_code}"] += 1
            finally:
                in_flight -= 1

    async def kubelet(http: httpx.AsyncClient) -> None:
        while True:
            await asyncio.sleep(0.05)
            try:
                ready = (await http.get(f"{base}/health/ready")).status_code == 200
            except httpx.HTTPError:
                ready = False
            if not ready and term_at is not None:
                await asyncio.sleep(PROPAGATION)
                stop.set()
                return

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with (
        httpx.AsyncClient(limits=limits, timeout=GRACE) as http,
        httpx.AsyncClient(timeout=1.0) as probe,
    ):
        tasks = [asyncio.create_task(client(http)) for _ in range(CLIENTS)]
        if result.honour_readiness:
            tasks.append(asyncio.create_task(kubelet(probe)))
        await asyncio.sleep(LOAD_BEFORE_SIGTERM)
        term_at = time.perf_counter()
        result.in_flight_at_sigterm = in_flight
        server.proc.send_signal(signal.SIGTERM)
        deadline = term_at + GRACE + 5
        while server.proc.poll() is None and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        result.exit_seconds = time.perf_counter() - term_at
        result.exit_code = server.proc.poll()
        stop.set()
        await asyncio.gather(*tasks)


def run(project: Project, work: Path, *, honour_readiness: bool) -> Drain:
    framework = str(project.answers["framework"])
    port = free_port()
    server = Server(
        pinned(SERVER_CPU, service_argv(project)),
        cwd=project.path,
        env=service_env(
            project,
            port,
            DRAIN_SECONDS=f"{DRAIN_SECONDS:g}",
            SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT),
        ),
        port=port,
        log=work / f"drain-{framework}-{honour_readiness}.log",
    )
    result = Drain(framework, honour_readiness)
    try:
        server.wait_for("/health/ready")
        asyncio.run(_load(server, result))
    finally:
        server.stop()
    return result


def measure(work: Path, projects: dict[str, Project]) -> list[Drain]:
    return [
        run(projects[f], work, honour_readiness=honour)
        for f in FRAMEWORKS
        for honour in (True, False)
    ]


def _failures(d: Drain) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in d.failures.items()) or "0"


def rows(results: list[Drain]) -> list[Row]:
    out = []
    for d in results:
        if d.honour_readiness:
            out += [
                Row(
                    "draining",
                    f"{d.framework}: failed requests (k8s-like)",
                    f"{_failures(d)} of {d.sent} ({d.in_flight_at_sigterm} in flight at "
                    f"SIGTERM, {d.sent_while_draining} sent while draining)",
                    "0",
                    d.failed == 0 and d.sent_while_draining > 0,
                ),
                Row(
                    "draining",
                    f"{d.framework}: SIGTERM to exit",
                    f"{d.exit_seconds:.2f} s, exit code {d.exit_code}",
                    f"< {GRACE:g} s, 0",
                    d.exit_code == 0 and d.exit_seconds < GRACE,
                ),
            ]
        else:
            out.append(
                Row(
                    "draining",
                    f"{d.framework}: no endpoint removal (info)",
                    f"{_failures(d)} in-flight failed of {d.sent}, {d.refused} refused "
                    f"after close; exit {d.exit_seconds:.2f} s",
                )
            )
    return out


def main() -> int:
    return run_section(lambda work, projects: rows(measure(work, projects)))


if __name__ == "__main__":
    sys.exit(main())
