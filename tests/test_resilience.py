"""Resilience end to end, for both frameworks, against the real servers through TCP relays
the test controls: the broker vanishes while items are created, a worker is killed in the
middle of a batch. Nothing is lost, nothing is processed twice. (Each backing service's circuit
breaker: test_circuit_breakers.py.)

Run with `-s` to see the figures (timings are printed, never asserted).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from .conftest import ProjectFactory
from .support import LOCAL_SERVICES, SERVICES, Project, combo_id, service_env
from .tcp_relay import TcpRelay
from .test_backing_services import (
    _CLEAN_UP,
    ALL_SERVICES,
    free_port,
    lines_of,
    logged_items,
    own_schema,
    running,
    wait_for,
)

pytestmark = pytest.mark.e2e

ITEMS = 200
OUTAGE_SECONDS = 10.0
AMQP_URL = LOCAL_SERVICES["rabbitmq"]["AMQP_URL"]
DATABASE_URL = LOCAL_SERVICES["postgres"]["DATABASE_URL"]

# Run with the project's Python (it has psycopg): prints the query's rows as JSON.
_QUERY = (
    "import json, os, sys, psycopg\n"
    "with psycopg.connect(os.environ['DATABASE_URL']) as c:\n"
    "    print(json.dumps(c.execute(sys.argv[1]).fetchall(), default=str))\n"
)


class Stack:
    """A migrated all-services project on a schema and queue of its own."""

    def __init__(self, project: Project, env: dict[str, str]) -> None:
        self.project = project
        self.env = env

    def query(self, sql: str) -> list[list[Any]]:
        result = self.project.run(str(self.project.python), "-c", _QUERY, sql, env=self.env)
        rows: list[list[Any]] = json.loads(result.stdout)
        return rows

    def pending(self) -> int:
        return int(self.query("SELECT count(*) FROM outbox")[0][0])

    def processed(self) -> set[str]:
        return {row[0] for row in self.query("SELECT event_id::text FROM processed_events")}

    def worker(self, **env: str) -> Any:
        return running(self.project, f"{self.project.package}.worker", {**self.env, **env})


@pytest.fixture(params=ALL_SERVICES, ids=combo_id)
def stack(project: ProjectFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    generated = project(request.param)
    name = f"svcgen_res_{uuid.uuid4().hex[:8]}"
    env = service_env(SERVICES, name)
    env.update(
        DATABASE_URL=f"{DATABASE_URL}?options=-csearch_path%3D{name}",
        EVENTS_QUEUE=name,
        CACHE_KEY_PREFIX=name,
        DRAIN_SECONDS="0",
        OUTBOX_RELAY_INTERVAL="0.2",
    )
    server = {**env, "DATABASE_URL": DATABASE_URL}
    with own_schema(generated, name, server, env, clean_up=_CLEAN_UP):
        yield Stack(generated, env)


def consumed(lines: Any, want: int, timeout: float) -> list[str]:
    """Event ids the worker logged as handled, read until `want` of them (or the timeout)."""
    events = logged_items(lines, lambda events: len(events) >= want, timeout)
    return [event["event_id"] for event in events]


def drain(lines: Any) -> list[dict[str, Any]]:
    """Every line left in a finished process's output, parsed."""
    return [json.loads(line) for line in iter(lines.get, "")]


def post_items(base: str, count: int, spread: float) -> list[int]:
    """POST `count` items from 8 threads, spread over `spread` seconds; their status codes."""
    with httpx.Client(base_url=base, timeout=30) as client, ThreadPoolExecutor(8) as pool:
        futures = []
        for n in range(count):
            futures.append(pool.submit(client.post, "/api/items", json={"name": f"item {n}"}))
            time.sleep(spread / count)
        return [future.result().status_code for future in futures]


def test_no_event_is_lost_or_processed_twice(stack: Stack) -> None:
    generated = stack.project
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web_env = {"PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "2"}
    with (
        TcpRelay(("127.0.0.1", 5672)) as broker,
        running(generated, generated.package, {**stack.env, **web_env}) as (web, _),
    ):
        amqp = {"AMQP_URL": broker.url(AMQP_URL)}
        # 1. The broker is cut for 10 s while 200 items are created.
        with stack.worker(**amqp) as (_, lines):
            wait_for(f"{base}/health/ready", 200, web)
            broker.cut()
            cut_at = time.monotonic()
            statuses = post_items(base, ITEMS, spread=OUTAGE_SECONDS * 0.8)
            assert statuses == [201] * ITEMS, "every item is stored while the broker is down"
            assert stack.pending() == ITEMS, "their events wait in the outbox"
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - cut_at)))
            broker.restore()
            restored_at = time.monotonic()
            first = consumed(lines, ITEMS, timeout=120)
            recovery = time.monotonic() - restored_at
            assert len(first) == ITEMS, f"only {len(first)} of {ITEMS} events consumed"
            time.sleep(1)  # room for a duplicate to show up
        first += [e["event_id"] for e in drain(lines) if e.get("event") == "item.created"]
        assert sorted(first) == sorted(set(first)), "an event was processed twice"
        assert stack.pending() == 0
        assert stack.processed() == set(first)
        print(
            f"\n[{combo_id(generated.answers)}] broker cut {OUTAGE_SECONDS:g}s: {ITEMS}x201, "
            f"all {ITEMS} events consumed once {recovery:.2f}s after the broker came back"
        )

        # 2. A worker killed in the middle of a batch: its database made slow so it can be caught.
        items = post_items(base, ITEMS, spread=0)
        assert items == [201] * ITEMS
        with TcpRelay(("127.0.0.1", 5432), delay=0.01) as slow_db:
            slow = {**amqp, "DATABASE_URL": slow_db.url(stack.env["DATABASE_URL"])}
            victim = subprocess.Popen(
                [str(generated.python), "-m", f"{generated.package}.worker"],
                cwd=generated.path,
                env={**generated.env, **stack.env, **slow},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                assert victim.stdout is not None
                logged = consumed(lines_of(victim.stdout), 40, timeout=60)
            finally:
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
            killed_at = time.monotonic()
        committed = stack.processed() - set(first)
        assert len(logged) >= 40, "the worker was killed in the middle of the batch"
        assert 0 < len(committed) < ITEMS, "the worker was killed in the middle of the batch"
        with stack.worker(**amqp) as (_, lines):
            second = consumed(lines, ITEMS - len(committed), timeout=120)
            deadline = time.monotonic() + 30
            while stack.pending() and time.monotonic() < deadline:
                time.sleep(0.2)
            recovered = time.monotonic() - killed_at
            time.sleep(1)
        rest = drain(lines)
        second += [e["event_id"] for e in rest if e.get("event") == "item.created"]
        skipped = [e for e in rest if e.get("message") == "event already processed: skipped"]
        assert not committed & set(second), "an event committed before the kill was handled again"
        assert sorted(second) == sorted(set(second))
        assert len(committed) + len(second) == ITEMS
        assert stack.processed() == set(first) | committed | set(second)
        assert stack.pending() == 0
        print(
            f"[{combo_id(generated.answers)}] worker SIGKILLed after {len(logged)} handled "
            f"({len(committed)} committed, {len(set(logged) - committed)} rolled back); "
            f"restarted worker handled {len(second)}, skipped {len(skipped)} duplicates; "
            f"all {ITEMS} once, {recovered:.2f}s after the kill"
        )
