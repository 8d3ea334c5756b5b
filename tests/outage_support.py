"""What the dependency-outage tests share (test_hanging_dependencies.py and
test_dependency_outages.py): a generated project on a schema, queue and key prefix of its own,
whose web process the test starts with some URLs pointed at TCP relays (tests/tcp_relay.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from .conftest import ProjectFactory
from .support import CATALOG, FRAMEWORKS, Project, matrix, service_env
from .test_backing_services import (
    _CLEAN_UP,
    _CREATE_SCHEMA,
    ALL_SERVICES,
    free_port,
    running,
)

TIMEOUT = 1.0  # HEALTH_CHECK_TIMEOUT and DATABASE_POOL_TIMEOUT
READY_BOUND = TIMEOUT + 0.2  # the bound on a readiness answer
ROUTE_BOUND = TIMEOUT + 0.5  # a route's own timeout, with room for a loaded machine
# On a stalled connection PostgreSQL's client cuts at DATABASE_STATEMENT_TIMEOUT + 0.5 s.
STALLED_ROUTE_BOUND = TIMEOUT + 1.0
PROBES = 3
RECOVERY_LIMIT = 30.0
PORTS = {name: entry["port"] for name, entry in CATALOG.items()}
URL_VARIABLE = {name: entry["env"] for name, entry in CATALOG.items()}
REDIS_RABBITMQ = {a["framework"]: a for a in matrix() if a["services"] == ["redis", "rabbitmq"]}
ALL = {a["framework"]: a for a in ALL_SERVICES}
SETTINGS = {
    "HEALTH_CHECK_TIMEOUT": str(TIMEOUT),
    "DATABASE_POOL_TIMEOUT": str(TIMEOUT),
    "DATABASE_STATEMENT_TIMEOUT": str(TIMEOUT),
    "BREAKER_RESET_TIMEOUT": "2",
    "DRAIN_SECONDS": "0",
    "HOST": "127.0.0.1",
}

# _CLEAN_UP without the schema, for a project without PostgreSQL.
_DELETE_QUEUE = "import asyncio, os, sys, aio_pika\n" + _CLEAN_UP[_CLEAN_UP.index("async def") :]


@dataclass
class Stack:
    """A generated project with its own schema, queue and key prefix on the local servers."""

    project: Project
    env: dict[str, str]

    def web(self, **env: str) -> tuple[Any, str]:
        """Start the web process (a context manager) and its base URL."""
        port = free_port()
        process = running(
            self.project, self.project.package, {**self.env, **env, "PORT": str(port)}
        )
        return process, f"http://127.0.0.1:{port}"


def outage_stack(project: ProjectFactory, answers: dict[str, Any]) -> Iterator[Stack]:
    generated = project(answers)
    name = f"svcgen_out_{uuid.uuid4().hex[:8]}"
    services = answers["services"]
    env = {
        **service_env(services, name),
        **SETTINGS,
        "EVENTS_QUEUE": name,
        "CACHE_KEY_PREFIX": name,
    }
    server = dict(env)
    if "postgres" in services:
        generated.run(str(generated.python), "-c", _CREATE_SCHEMA, name, env=server)
        env["DATABASE_URL"] += f"?options=-csearch_path%3D{name}"
    try:
        if "postgres" in services:
            generated.run(str(generated.python), "-m", generated.package, "migrate", env=env)
        yield Stack(generated, env)
    finally:
        clean_up = _CLEAN_UP if "postgres" in services else _DELETE_QUEUE
        generated.run(str(generated.python), "-c", clean_up, name, env=server)


def timed(
    client: httpx.Client, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = client.request(method, url, **kwargs)
    return response, time.perf_counter() - started


def until(answers: Callable[[], bool], what: str) -> float:
    """Seconds until `answers()` is true (polled), failing after RECOVERY_LIMIT."""
    started = time.monotonic()
    while not answers():
        assert time.monotonic() - started < RECOVERY_LIMIT, f"{what}: never recovered"
        time.sleep(0.1)
    return time.monotonic() - started


ITEM_ID = "00000000-0000-4000-8000-000000000000"


def seed_item(stack: Stack) -> None:
    """The item the Redis case reads (through the cache): in the database, not in the cache."""
    sql = f"INSERT INTO items (id, name, created_at) VALUES ('{ITEM_ID}', 'seed', now())"
    insert = (
        "import os, sys, psycopg\n"
        "with psycopg.connect(os.environ['DATABASE_URL'], autocommit=True) as c:\n"
        "    c.execute(sys.argv[1] + ' ON CONFLICT DO NOTHING')\n"
    )
    stack.project.run(str(stack.project.python), "-c", insert, sql, env=stack.env)


@pytest.fixture(scope="module", params=FRAMEWORKS)
def all_services(project: ProjectFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """An all-services project per framework (the web process uses no broker there)."""
    yield from outage_stack(project, ALL[request.param])


@pytest.fixture(scope="module", params=FRAMEWORKS)
def publishing(project: ProjectFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A Redis + RabbitMQ project per framework, whose web process publishes."""
    yield from outage_stack(project, REDIS_RABBITMQ[request.param])
