"""Generated services with every catalog service, run against the local servers.

For each framework: migrate, serve, probe, round-trip an item through the database and a
file attached to it through object storage, and watch the worker process log the event; then
point DATABASE_URL at a closed port and check the service stays alive but not ready, naming the
database check.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from .conftest import ProjectFactory
from .support import (
    CATALOG,
    FRAMEWORKS,
    SERVICES,
    Project,
    combo_id,
    dies_with_test,
    matrix,
    service_env,
)

pytestmark = pytest.mark.e2e

ALL_SERVICES = [a for a in matrix() if sorted(a["services"]) == sorted(SERVICES)]
assert sorted(a["framework"] for a in ALL_SERVICES) == sorted(FRAMEWORKS), "one per framework"
HEALTH_CHECK_TIMEOUT = 2.0
#: The services the web process has a client of, so a readiness check for, with all chosen.
WEB_SERVICES = [name for name in SERVICES if CATALOG[name]["web_unless"] not in SERVICES]

# Run with the project's own Python (it has psycopg and aio-pika); argv[1] is the name.
_CREATE_SCHEMA = (
    "import os, sys, psycopg\n"
    "with psycopg.connect(os.environ['DATABASE_URL'], autocommit=True) as c:\n"
    "    c.execute(f'CREATE SCHEMA \"{sys.argv[1]}\"')\n"
)
_DROP_SCHEMA = (
    "import os, sys, psycopg\n"
    "with psycopg.connect(os.environ['DATABASE_URL'], autocommit=True) as c:\n"
    "    c.execute(f'DROP SCHEMA IF EXISTS \"{sys.argv[1]}\" CASCADE')\n"
)
_CLEAN_UP = (
    "import asyncio, os, sys, aio_pika, psycopg\n"
    "with psycopg.connect(os.environ['DATABASE_URL'], autocommit=True) as c:\n"
    "    c.execute(f'DROP SCHEMA IF EXISTS \"{sys.argv[1]}\" CASCADE')\n"
    "async def main():\n"
    "    async with await aio_pika.connect(os.environ['AMQP_URL']) as connection:\n"
    "        channel = await connection.channel()\n"
    "        await channel.queue_delete(sys.argv[1])\n"
    "asyncio.run(main())\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    """A process's output lines as they come ("" once it ends), so waits can time out."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    return lines


@contextmanager
def running(
    project: Project, module: str, env: Mapping[str, str]
) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """`python -m module` in the project; stopped with SIGTERM (and must exit 0) afterwards.

    It runs in a process group of its own: however the test ends, nothing it started (a server's
    workers too) outlives it."""
    process = subprocess.Popen(
        [str(project.python), "-m", module],
        cwd=project.path,
        env={**project.env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=dies_with_test,
    )
    assert process.stdout is not None
    try:
        yield process, lines_of(process.stdout)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, f"{module} did not exit cleanly on SIGTERM"
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def own_schema(
    project: Project,
    name: str,
    server: Mapping[str, str],
    env: Mapping[str, str],
    clean_up: str = _DROP_SCHEMA,
) -> Iterator[None]:
    """Schema `name` made on the server (`server`: its plain DATABASE_URL) and the project migrated
    into it (`env`: a DATABASE_URL with that search_path); `clean_up` runs with `name` after."""
    python = str(project.python)
    project.run(python, "-c", _CREATE_SCHEMA, name, env=server)
    try:
        project.run(python, "-m", project.package, "migrate", env=env)
        yield
    finally:
        project.run(python, "-c", clean_up, name, env=server)


def logged_items(
    lines: queue.Queue[str], done: Callable[[list[dict[str, Any]]], bool], timeout: float
) -> list[dict[str, Any]]:
    """The `item.created` events a worker logged as handled, read until `done(events)` (or the
    timeout)."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not done(events) and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
        except queue.Empty:
            break
        assert line, "the worker exited"
        entry = json.loads(line)
        if entry.get("event") == "item.created":
            events.append(entry)
    return events


def wait_for(url: str, status: int, process: subprocess.Popen[Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode} during start-up"
        try:
            if httpx.get(url, timeout=5).status_code == status:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} never answered {status}")


_FORKER = """\
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(child.pid, flush=True)
time.sleep(300)
"""


def test_a_failing_test_leaves_no_process_behind(tmp_path: Path) -> None:
    """running() stops the whole process group when the test fails: a server's workers too."""
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (tmp_path / "forker.py").write_text(_FORKER)
    project = Project(tmp_path, {"package_name": "forker"})

    def fail_while_running() -> None:
        with running(project, "forker", {}) as (_, lines):
            raise RuntimeError(int(lines.get(timeout=30)))  # the pid of the process it started

    with pytest.raises(RuntimeError) as failed:
        fail_while_running()
    child = failed.value.args[0]
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child), f"process {child} outlived the test"


def alive(pid: int) -> bool:
    """Running (a killed process waiting for init to reap it is not)."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


@pytest.fixture(params=ALL_SERVICES, ids=combo_id)
def service(
    project: ProjectFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Project, dict[str, str]]]:
    """An all-services project and the environment for one run: own schema, queue, key prefix."""
    generated = project(request.param)
    name = f"svcgen_e2e_{uuid.uuid4().hex[:8]}"
    env = service_env(SERVICES, name)
    server_url = env["DATABASE_URL"]
    env.update(
        DATABASE_URL=f"{server_url}?options=-csearch_path%3D{name}",
        EVENTS_QUEUE=name,
        CACHE_KEY_PREFIX=name,
        HEALTH_CHECK_TIMEOUT=str(HEALTH_CHECK_TIMEOUT),
        DRAIN_SECONDS="0",
    )
    generated.run(
        str(generated.python), "-c", _CREATE_SCHEMA, name, env={**env, "DATABASE_URL": server_url}
    )
    try:
        yield generated, env
    finally:
        generated.run(
            str(generated.python), "-c", _CLEAN_UP, name, env={**env, "DATABASE_URL": server_url}
        )


def test_serves_round_trips_items_and_the_worker_logs_the_event(
    service: tuple[Project, dict[str, str]],
) -> None:
    generated, env = service
    migrated = generated.run(str(generated.python), "-m", generated.package, "migrate", env=env)
    assert "Running upgrade" in migrated.stdout + migrated.stderr

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web_env = {**env, "PORT": str(port), "HOST": "127.0.0.1"}
    with (
        running(generated, generated.package, web_env) as (web, _),
        running(generated, f"{generated.package}.worker", env) as (_, worker_lines),
    ):
        wait_for(f"{base}/health/ready", 200, web)
        ready = httpx.get(f"{base}/health/ready").json()
        # Not the broker (the catalog's `web_unless`): its events go through the outbox.
        assert sorted(ready["checks"]) == sorted(WEB_SERVICES)

        name = f"e2e item {uuid.uuid4().hex[:6]}"
        created = httpx.post(f"{base}/api/items", json={"name": name}, timeout=10)
        assert created.status_code == 201, created.text
        item = created.json()
        assert item["name"] == name
        assert item in httpx.get(f"{base}/api/items", timeout=10).json()
        assert httpx.get(f"{base}/api/items/{item['id']}", timeout=10).json() == item
        assert httpx.post(f"{base}/api/items", json={"name": ""}).status_code == 422

        # Object storage: a file attached to the item, stored in the bucket and streamed back.
        file_url = f"{base}/api/items/{item['id']}/file"
        data = os.urandom(300_000)
        put = httpx.put(file_url, content=data, headers={"Content-Type": "image/png"}, timeout=10)
        assert put.status_code == 204, put.text
        got = httpx.get(file_url, timeout=10)
        assert (got.status_code, got.headers["content-type"]) == (200, "image/png")
        assert got.content == data
        unknown = f"{base}/api/items/{uuid.uuid4()}/file"
        assert httpx.put(unknown, content=b"x", timeout=10).status_code == 404
        assert httpx.get(unknown, timeout=10).status_code == 404
        too_big = httpx.put(file_url, content=b"x" * (1_048_576 + 1), timeout=10)
        assert too_big.status_code == 413  # MAX_BODY_BYTES' default
        assert httpx.get(file_url, timeout=10).content == data, "the refused body stored nothing"

        logged: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while not logged:
            line = worker_lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            assert line, "the worker exited"
            entry = json.loads(line)  # every line the worker writes is JSON
            if entry.get("event") == "item.created" and entry.get("item_id") == item["id"]:
                logged = entry
        assert logged["item_name"] == name
        assert logged["level"] == "INFO"


def test_a_database_that_is_down_makes_it_not_ready_naming_the_check(
    service: tuple[Project, dict[str, str]],
) -> None:
    generated, env = service
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    closed = free_port()  # nothing listens there
    down_env = {
        **env,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed}/test",
        "PORT": str(port),
        "HOST": "127.0.0.1",
    }
    with running(generated, generated.package, down_env) as (web, _):
        wait_for(f"{base}/health/live", 200, web)
        started = time.monotonic()
        response = httpx.get(f"{base}/health/ready", timeout=30)
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        body = response.json()
        assert body["failing"] == ["postgres"]
        assert body["checks"]["postgres"]["status"] == "fail"
        assert body["checks"]["redis"]["status"] == "pass"
        assert body["checks"]["s3"]["status"] == "pass"
        assert elapsed < HEALTH_CHECK_TIMEOUT + 1.5, f"readiness took {elapsed:.1f}s"
        assert httpx.get(f"{base}/health/live").status_code == 200
        # Still alive and still not ready a moment later: no crash loop.
        time.sleep(1)
        assert web.poll() is None
        assert httpx.get(f"{base}/health/ready", timeout=30).status_code == 503


def test_storage_that_is_down_makes_it_not_ready_and_only_files_answer_503(
    service: tuple[Project, dict[str, str]],
) -> None:
    generated, env = service
    generated.run(str(generated.python), "-m", generated.package, "migrate", env=env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    closed = free_port()  # nothing listens there
    down_env = {
        **env,
        "S3_URL": f"http://key:secret@127.0.0.1:{closed}",
        "PORT": str(port),
        "HOST": "127.0.0.1",
    }
    with running(generated, generated.package, down_env) as (web, _):
        wait_for(f"{base}/health/live", 200, web)
        response = httpx.get(f"{base}/health/ready", timeout=30)
        assert response.status_code == 503
        body = response.json()
        assert body["failing"] == ["s3"]
        assert body["checks"]["s3"]["status"] == "fail"
        item = httpx.post(f"{base}/api/items", json={"name": "no file"}, timeout=10)
        assert item.status_code == 201, "items do not need the storage"
        file_url = f"{base}/api/items/{item.json()['id']}/file"
        for answer in (httpx.get(file_url, timeout=10), httpx.put(file_url, content=b"x")):
            assert answer.status_code == 503, answer.text
            assert answer.json()["detail"].startswith("s3")
