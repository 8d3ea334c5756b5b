"""A dependency that accepts connections and never answers, for both frameworks, against the
real servers through TCP relays the test controls (issue 13, item 4).

The service starts regardless, `/health/ready` answers 503 within HEALTH_CHECK_TIMEOUT + 0.2 s
(the median of a few probes: the machine is shared), routes that need it answer 503 within their
own timeout; once it answers again, everything recovers with no restart. Then the connections
already open stall: readiness still answers 503 within the bound.

PostgreSQL and Redis are tried on an all-services project, RabbitMQ on a Redis + RabbitMQ one
(tests/outage_support.py). Run with `-s` to see the figures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .outage_support import (
    ITEM_ID,
    PORTS,
    PROBES,
    READY_BOUND,
    ROUTE_BOUND,
    STALLED_ROUTE_BOUND,
    TIMEOUT,
    URL_VARIABLE,
    Stack,
    all_services,
    publishing,
    seed_item,
    timed,
    until,
)
from .support import combo_id
from .tcp_relay import TcpRelay
from .test_backing_services import wait_for

__all__ = ["all_services", "publishing"]  # fixtures, shared with the other outage module

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("dependency-outages")]


def _hanging(stack: Stack, service: str, route: Callable[[httpx.Client], httpx.Response]) -> None:
    """Start with `service` hanging, probe readiness and `route`, then let it answer again."""
    label = f"[{combo_id(stack.project.answers)}] {service} hanging"
    variable = URL_VARIABLE[service]
    with TcpRelay(("127.0.0.1", PORTS[service])) as relay:
        relay.hang()
        web, base = stack.web(**{variable: relay.url(stack.env[variable])})
        spawned = time.monotonic()
        with web as (process, _), httpx.Client(base_url=base, timeout=30) as client:
            wait_for(f"{base}/health/live", 200, process)
            live_after = time.monotonic() - spawned
            # Started while the dependency never answered: start-up doesn't wait for it.
            assert client.get("/health/startup").status_code == 200

            latencies = []
            for _ in range(PROBES):
                ready, elapsed = timed(client, "GET", "/health/ready")
                latencies.append(elapsed)
                assert ready.status_code == 503, ready.text
                assert ready.json()["failing"] == [service], ready.text
            median = statistics.median(latencies)
            assert median <= READY_BOUND, f"readiness took {latencies} (median {median:.2f}s)"

            started = time.perf_counter()
            answer = route(client)
            route_took = time.perf_counter() - started
            expected = 200 if service == "redis" else 503  # a cache that fails is skipped
            assert answer.status_code == expected, answer.text
            assert route_took <= ROUTE_BOUND, f"{service}: the route took {route_took:.2f}s"
            assert client.get("/health/live").status_code == 200

            relay.restore()
            recovered = until(
                lambda: client.get("/health/ready").status_code == 200, f"{service} readiness"
            )
            routed = until(lambda: route(client).status_code < 300, f"{service} route")

            relay.hang()  # now the open connections stall too
            stalled = []
            for _ in range(PROBES):
                ready, elapsed = timed(client, "GET", "/health/ready")
                stalled.append(elapsed)
                assert ready.status_code == 503, ready.text
            stalled_answer, stalled_took = timed(client, *route_request(service), **_body(service))
            assert stalled_answer.status_code == expected, stalled_answer.text
            relay.restore()
            until(lambda: client.get("/health/ready").status_code == 200, f"{service} again")
            assert statistics.median(stalled) <= READY_BOUND, f"stalled: readiness {stalled}"
            assert stalled_took <= STALLED_ROUTE_BOUND, f"stalled: the route took {stalled_took}"
            assert process.poll() is None, "recovered with no restart"
    print(
        f"\n{label}: live after {live_after:.2f}s; ready 503 in "
        f"{_seconds(latencies)}s "
        f"(median {median:.3f}s, timeout {TIMEOUT:g}s); "
        f"{route_request(service)[1]} {answer.status_code} in {route_took:.3f}s; after restore "
        f"ready in {recovered:.2f}s, the route in {recovered + routed:.2f}s"
        + f"; open connections stalled: ready 503 in {_seconds(stalled)}s, "
        f"the route {stalled_answer.status_code} in {stalled_took:.3f}s"
    )


def _seconds(latencies: list[float]) -> str:
    return ", ".join(f"{s:.3f}" for s in latencies)


def route_request(service: str) -> tuple[str, str]:
    """The request that needs `service` (Redis: a cached read, which falls back to the database)."""
    if service == "redis":
        return "GET", f"/api/items/{ITEM_ID}"
    if service == "postgres":
        return "GET", "/api/items"
    return "POST", "/api/items"


def _body(service: str) -> dict[str, Any]:
    return {"json": {"name": "after"}} if route_request(service)[0] == "POST" else {}


def _route(service: str) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.request(*route_request(service), **_body(service))


@pytest.mark.parametrize("service", ["postgres", "redis"])
def test_a_hanging_database_or_cache_fails_readiness_in_time(
    all_services: Stack, service: str
) -> None:
    seed_item(all_services)
    _hanging(all_services, service, _route(service))


def test_a_hanging_broker_fails_readiness_in_time(publishing: Stack) -> None:
    _hanging(publishing, "rabbitmq", _route("rabbitmq"))
