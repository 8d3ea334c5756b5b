"""Each backing service's circuit breaker end to end, for both frameworks, against the real
servers through TCP relays the test controls: PostgreSQL, and Redis and the broker without
PostgreSQL. A breaker opens when its server is cut, answers at once while open, and closes after
a trial once the server is back.

Run with `-s` to see the figures (timings are printed, never asserted).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import ProjectFactory
from .support import LOCAL_SERVICES, combo_id, matrix, service_env
from .tcp_relay import TcpRelay
from .test_backing_services import free_port, own_schema, running, wait_for
from .test_resilience import DATABASE_URL, Stack

pytestmark = pytest.mark.e2e


POSTGRES_ONLY = [a for a in matrix() if a["services"] == ["postgres"]]
THRESHOLD = 3
RESET_SECONDS = 5.0
POOL_TIMEOUT = 1.0


@pytest.fixture(params=POSTGRES_ONLY, ids=combo_id)
def pg_stack(project: ProjectFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    generated = project(request.param)
    name = f"svcgen_cb_{uuid.uuid4().hex[:8]}"
    env = {
        **service_env(["postgres"], name),
        "DATABASE_URL": f"{DATABASE_URL}?options=-csearch_path%3D{name}",
        "DRAIN_SECONDS": "0",
    }
    server = {**env, "DATABASE_URL": DATABASE_URL}
    with own_schema(generated, name, server, env):
        yield Stack(generated, env)


def breaker_metric(metrics_url: str) -> str:
    lines = httpx.get(metrics_url, timeout=30).text.splitlines()
    return next(
        line for line in lines if line.startswith('circuit_breaker_state{service="postgres"}')
    )


def test_a_database_cut_opens_the_breaker_then_a_trial_closes_it(pg_stack: Stack) -> None:
    generated = pg_stack.project
    port = free_port()
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    with TcpRelay(("127.0.0.1", 5432)) as db:
        env = {
            **pg_stack.env,
            "DATABASE_URL": db.url(pg_stack.env["DATABASE_URL"]),
            "PORT": str(port),
            "METRICS_PORT": str(metrics_port),
            "HOST": "127.0.0.1",
            "BREAKER_FAILURE_THRESHOLD": str(THRESHOLD),
            "BREAKER_RESET_TIMEOUT": str(RESET_SECONDS),
            "DATABASE_POOL_TIMEOUT": str(POOL_TIMEOUT),
        }
        with (
            running(generated, generated.package, env) as (web, _),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
        ):
            wait_for(f"http://127.0.0.1:{port}/health/ready", 200, web)
            assert client.get("/api/items").status_code == 200
            assert breaker_metric(metrics_url).endswith(" 0.0")

            db.cut()
            cut_at = time.monotonic()
            tries = 0
            while "circuit open" not in (answer := client.get("/api/items")).text:
                assert answer.status_code == 503, answer.text
                tries += 1
                assert tries <= THRESHOLD, "the breaker never opened"
            opened_at = time.monotonic()

            latencies: list[float] = []
            while len(latencies) < 200 and time.monotonic() - opened_at < RESET_SECONDS * 0.8:
                started = time.perf_counter()
                answer = client.get("/api/items")
                latencies.append(time.perf_counter() - started)
                assert answer.status_code == 503
                detail = answer.json()["detail"]  # the last failure's cause, e.g. refused
                assert detail.startswith("postgres"), detail
                assert detail.endswith("(circuit open)"), detail
            latencies.sort()
            p99 = latencies[int(len(latencies) * 0.99) - 1]
            assert p99 < POOL_TIMEOUT, "an open breaker answers without waiting for the database"
            ready = client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["postgres"]["breaker"] in {"open", "half_open"}
            assert breaker_metric(metrics_url).endswith((" 1.0", " 2.0"))

            db.restore()
            restored_at = time.monotonic()
            while (answer := client.get("/api/items")).status_code != 200:
                assert answer.status_code == 503
                assert time.monotonic() - restored_at < 60, "the breaker never closed"
                time.sleep(0.1)
            recovered = time.monotonic() - restored_at
            assert client.post("/api/items", json={"name": "after"}).status_code == 201
            ready = client.get("/health/ready").json()
            assert ready["checks"]["postgres"]["breaker"] == "closed"
            assert breaker_metric(metrics_url).endswith(" 0.0")
            assert web.poll() is None, "recovered with no restart"
    print(
        f"\n[{combo_id(generated.answers)}] database cut: breaker open after {tries} failed "
        f"requests ({opened_at - cut_at:.2f}s); {len(latencies)} requests while open: 503 "
        f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms; closed {recovered:.2f}s after the database came "
        f"back (reset timeout {RESET_SECONDS:g}s)"
    )


# --- Redis and the broker (RabbitMQ without PostgreSQL): a breaker each -------------------

CACHE_AND_BROKER = [a for a in matrix() if a["services"] == ["redis", "rabbitmq"]]
assert sorted(a["framework"] for a in CACHE_AND_BROKER) == ["fastapi", "flask"]
CUT_THRESHOLD = 4
CUT_RESET_SECONDS = 4.0
OPEN_P99_BOUND = 0.25  # the 50 ms while a breaker is open, with room for a loaded machine

# Run with the project's Python: the number of messages in queue argv[1], then delete it.
_COUNT_AND_DELETE = (
    "import asyncio, os, sys, aio_pika\n"
    "async def main():\n"
    "    async with await aio_pika.connect(os.environ['AMQP_URL']) as connection:\n"
    "        channel = await connection.channel()\n"
    "        queue = await channel.declare_queue(sys.argv[1], durable=True)\n"
    "        print(queue.declaration_result.message_count)\n"
    "        await channel.queue_delete(sys.argv[1])\n"
    "asyncio.run(main())\n"
)


def sample(metrics_url: str, name: str, service: str) -> float:
    """The value of metric `name{service="..."}` the server's master exposes now."""
    prefix = f'{name}{{service="{service}"}} '
    lines = httpx.get(metrics_url, timeout=30).text.splitlines()
    return float(next(line for line in lines if line.startswith(prefix)).split()[-1])


def p(latencies: list[float], percent: int) -> float:
    ordered = sorted(latencies)
    return ordered[max(0, round(len(ordered) * percent / 100) - 1)]


@pytest.mark.parametrize("answers", CACHE_AND_BROKER, ids=combo_id)
def test_redis_and_broker_cuts_open_their_breakers_then_trials_close_them(
    project: ProjectFactory, answers: dict[str, Any]
) -> None:
    """Cost: one redis+rabbitmq project per framework (test_generated_project's, when this
    worker built it already) and ~15 s of a running server."""
    generated = project(answers)
    name = f"svcgen_cb_{uuid.uuid4().hex[:8]}"
    port, metrics_port = free_port(), free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    figures: list[str] = []
    with (
        TcpRelay(("127.0.0.1", 6379)) as redis,
        TcpRelay(("127.0.0.1", 5672)) as broker,
    ):
        env = {
            **service_env(["redis", "rabbitmq"], name),
            "EVENTS_QUEUE": name,
            "CACHE_KEY_PREFIX": name,
            "DRAIN_SECONDS": "0",
            "PORT": str(port),
            "METRICS_PORT": str(metrics_port),
            "HOST": "127.0.0.1",
            "BREAKER_FAILURE_THRESHOLD": str(CUT_THRESHOLD),
            "BREAKER_RESET_TIMEOUT": str(CUT_RESET_SECONDS),
            "RETRY_ATTEMPTS": "2",
        }
        env["REDIS_URL"] = redis.url(env["REDIS_URL"])
        env["AMQP_URL"] = broker.url(env["AMQP_URL"])
        accepted = 0
        try:
            with (
                running(generated, generated.package, env) as (web, _),
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
            ):
                wait_for(f"http://127.0.0.1:{port}/health/ready", 200, web)
                assert client.post("/api/items", json={"name": "before"}).status_code == 202
                accepted += 1

                # Redis: a cache-aside read never fails; once the breaker is open it goes to
                # the source at once, without trying Redis (no more retries are counted).
                assert client.get("/api/demo").status_code == 200
                redis.cut()
                cut_at = time.monotonic()
                reads = 0
                while sample(metrics_url, "circuit_breaker_state", "redis") != 1:
                    answer = client.get("/api/demo")
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["cached"] is False
                    reads += 1
                    assert reads <= CUT_THRESHOLD, "the redis breaker never opened"
                opened = time.monotonic() - cut_at
                retries = sample(metrics_url, "dependency_retries_total", "redis")
                assert retries >= 1, "a GET whose connection broke is retried"
                latencies = _while_open(client, "GET", "/api/demo", 200, CUT_RESET_SECONDS * 0.5)
                assert sample(metrics_url, "dependency_retries_total", "redis") == retries
                ready = client.get("/health/ready")
                assert ready.status_code == 503
                check = ready.json()["checks"]["redis"]
                assert check["breaker"] == "open", check
                assert p(latencies, 99) < OPEN_P99_BOUND, "answered without Redis"
                redis.restore()
                restored_at = time.monotonic()
                while sample(metrics_url, "circuit_breaker_state", "redis") != 0:
                    assert client.get("/api/demo").status_code == 200
                    assert time.monotonic() - restored_at < 30, "the redis breaker never closed"
                    time.sleep(0.05)
                closed = time.monotonic() - restored_at
                assert client.get("/api/demo").json()["cached"] is True
                figures.append(
                    _figures("redis", f"{reads} reads, 2 tries each", opened, latencies, closed)
                )

                # The broker: a publish that fails answers 503; while open, at once.
                broker.cut()
                cut_at = time.monotonic()
                posts = 0
                lost = {"name": "lost"}
                while "circuit open" not in (answer := client.post("/api/items", json=lost)).text:
                    assert answer.status_code == 503, answer.text
                    assert answer.json()["detail"].startswith("rabbitmq: "), answer.text
                    posts += 1
                    assert posts <= CUT_THRESHOLD, "the rabbitmq breaker never opened"
                opened = time.monotonic() - cut_at
                latencies = _while_open(
                    client, "POST", "/api/items", 503, CUT_RESET_SECONDS * 0.5, {"name": "x"}
                )
                assert sample(metrics_url, "circuit_breaker_state", "rabbitmq") == 1
                check = client.get("/health/ready").json()["checks"]["rabbitmq"]
                assert check["breaker"] == "open", check
                assert p(latencies, 99) < OPEN_P99_BOUND, "answered without the broker"
                broker.restore()
                restored_at = time.monotonic()
                after = {"name": "after"}
                while (answer := client.post("/api/items", json=after)).status_code != 202:
                    assert answer.status_code == 503, answer.text
                    assert time.monotonic() - restored_at < 30, "the rabbitmq breaker never closed"
                    time.sleep(0.05)
                accepted += 1
                closed = time.monotonic() - restored_at
                assert sample(metrics_url, "circuit_breaker_state", "rabbitmq") == 0
                ready = client.get("/health/ready")
                assert ready.status_code == 200, ready.text
                assert {c["breaker"] for c in ready.json()["checks"].values()} == {"closed"}
                assert web.poll() is None, "recovered with no restart"
                figures.append(
                    _figures("rabbitmq", f"{posts} publishes", opened, latencies, closed)
                )
        finally:
            counted = generated.run(
                str(generated.python), "-c", _COUNT_AND_DELETE, name, env=LOCAL_SERVICES["rabbitmq"]
            )
    assert int(counted.stdout) == accepted, "a publish that answered 503 left no message"
    print(f"\n[{combo_id(answers)}] " + f"\n[{combo_id(answers)}] ".join(figures))


def _while_open(
    client: httpx.Client,
    method: str,
    path: str,
    status: int,
    seconds: float,
    body: dict[str, str] | None = None,
) -> list[float]:
    """Latencies of up to 200 requests sent within `seconds`, each answering `status`."""
    latencies: list[float] = []
    started = time.monotonic()
    while len(latencies) < 200 and time.monotonic() - started < seconds:
        before = time.perf_counter()
        answer = client.request(method, path, json=body)
        latencies.append(time.perf_counter() - before)
        assert answer.status_code == status, answer.text
        if status == 503:
            assert answer.json()["detail"].endswith("(circuit open)"), answer.text
    return latencies


def _figures(service: str, tries: str, opened: float, latencies: list[float], closed: float) -> str:
    return (
        f"{service} cut: breaker open after {tries} ({opened:.2f}s, threshold "
        f"{CUT_THRESHOLD}); {len(latencies)} requests while open: p50 "
        f"{p(latencies, 50) * 1000:.1f} ms, p99 {p(latencies, 99) * 1000:.1f} ms; closed "
        f"{closed:.2f}s after restore (reset timeout {CUT_RESET_SECONDS:g}s)"
    )
