"""Start a generated service for real and check what an operator sees."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

import httpx
import pytest

from .conftest import ProjectFactory
from .support import Project, dies_with_test

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"service exited with {process.returncode} during start-up")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} never answered 200")


def start(project: Project, port: int, metrics_port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(project.python), "-m", project.package],
        cwd=project.path,
        env={**project.env, "PORT": str(port), "METRICS_PORT": str(metrics_port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=dies_with_test,
    )


@pytest.mark.parametrize("framework", ["fastapi", "flask"])
def test_health_metrics_logs_and_sigterm(project: ProjectFactory, framework: str) -> None:
    generated = project({"framework": framework})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    metrics_port = free_port()
    with start(generated, port, metrics_port) as process:
        try:
            wait_ready(f"{base}/health/ready", process)
            assert httpx.get(f"{base}/health/live").status_code == 200
            assert httpx.get(f"{base}/health/startup").status_code == 200
            echoed = httpx.get(f"{base}/health/live", headers={"X-Request-ID": "rid-1"})
            assert echoed.headers["x-request-id"] == "rid-1"
            metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
            assert 'http_requests_total{method="GET",route="/health/live",status="200"}' in metrics
            assert httpx.get(f"{base}/metrics").status_code == 404  # internal stays internal
            if framework == "fastapi":  # the API documentation too (DOCS_ENABLED by default)
                internal = f"http://127.0.0.1:{metrics_port}"
                assert "/health/live" in httpx.get(f"{internal}/openapi.json").json()["paths"]
                assert httpx.get(f"{internal}/docs").status_code == 200
                for path in ("/docs", "/redoc", "/openapi.json"):
                    assert httpx.get(f"{base}{path}").status_code == 404

            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
            assert time.monotonic() - started < 5
        finally:
            if process.poll() is None:
                process.kill()
        assert process.stdout is not None
        lines = [line for line in process.stdout.read().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is JSON
    requests = [e for e in entries if e["logger"] == "access"]
    assert requests
    assert all(e["request_id"] for e in requests)
    assert any(e["request_id"] == "rid-1" for e in requests)


@pytest.mark.parametrize("framework", ["fastapi", "flask"])
def test_bad_port_stops_start_up_naming_the_variable(
    project: ProjectFactory, framework: str
) -> None:
    generated = project({"framework": framework})
    result = generated.run(
        str(generated.python), "-m", generated.package, env={"PORT": "not-a-port"}, check=False
    )
    assert result.returncode != 0
    assert "PORT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
