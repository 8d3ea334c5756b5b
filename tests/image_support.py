"""What test_image.py shares across its tests: building each generated project's image once per
session (the xdist group keeps them on one worker), the container's environment as the kubelet
builds it from the chart, and waiting for a container or rehearsing its image.
"""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from svcgen.rehearse.engine import Engine, RunSpec
from svcgen.rehearse.env import ConfigObjects, PodFacts, build_env
from svcgen.rehearse.report import Report
from svcgen.rehearse.run import Options, run_rehearsal

from .support import LOCAL_SERVICES, SERVICES, Project, combo_id, matrix, tool
from .test_rehearse import _pg_admin

#: Each framework with no backing service and with all of them (shared with test_container).
COMBOS = [a for a in matrix() if len(a["services"]) in (0, len(SERVICES))]
FULL = [a for a in COMBOS if a["services"]]
BARE = [a for a in COMBOS if not a["services"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class Built:
    project: Project
    image: str
    docs: list[dict[str, Any]]
    seconds: float

    def workload(self, kind: str, suffix: str = "") -> dict[str, Any]:
        """The pod spec of the rendered `kind` whose name ends with `suffix`."""
        names = []
        for doc in self.docs:
            if doc.get("kind") == kind:
                names.append(doc["metadata"]["name"])
                if suffix and not doc["metadata"]["name"].endswith(suffix):
                    continue
                if not suffix and doc["metadata"]["name"].endswith("-worker"):
                    continue
                spec: dict[str, Any] = doc["spec"]["template"]["spec"]
                return spec
        raise AssertionError(f"no {kind} *{suffix} among {names}")


BUILT: dict[str, Built] = {}
EXTRA: list[str] = []  # other images built in this session


def image_name(key: str) -> str:
    repository = re.sub(r"[^a-z0-9._-]+", "-", key.lower())
    return f"localhost/svcgen-test/{repository}:t{uuid.uuid4().hex[:8]}"  # never all digits


def build(engine: Engine, p: Project) -> Built:
    """The project's image (built once per session: the group runs on one worker) and its chart."""
    key = combo_id(p.answers)
    if key not in BUILT:
        image = image_name(key)
        started = time.monotonic()
        engine.build(
            p.path,
            image,
            build_args={"VERSION": "0.1.0-test", "REVISION": "0" * 40, "CREATED": "2026-01-01"},
            pull=False,
            network="host",
            layers=False,
        )
        seconds = time.monotonic() - started
        chart = next(p.path.glob("charts/*/Chart.yaml")).parent
        rendered = subprocess.run(
            [tool("helm"), "template", "rehearsal", str(chart)],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        docs = [d for d in yaml.safe_load_all(rendered.stdout) if isinstance(d, dict)]
        BUILT[key] = Built(p, image, docs, seconds)
        print(f"built {image} in {seconds:.1f}s")
    return BUILT[key]


def local_env(built: Built, pod_spec: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet builds it from the chart, with this machine's
    servers (host network), free ports and names of this run."""
    objects = ConfigObjects.from_manifests(built.docs, "default")
    env = build_env(container, objects, PodFacts(name="image-test")).values
    for service in built.project.answers["services"]:
        env.update(LOCAL_SERVICES[service])
    run = uuid.uuid4().hex[:8]
    for key in list(env):
        if key == "PORT" or key.endswith("_PORT"):
            env[key] = str(free_port())
    if "EVENTS_QUEUE" in env or "rabbitmq" in built.project.answers["services"]:
        env["EVENTS_QUEUE"] = f"image-test-{run}.events"
    if "redis" in built.project.answers["services"]:
        env["CACHE_KEY_PREFIX"] = f"image-test-{run}"
    return env


@dataclass
class Running:
    engine: Engine
    spec: RunSpec
    grace: float

    @property
    def name(self) -> str:
        return self.spec.name

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.spec.env['PORT']}{path}"


def database(project: Project, isolation: dict[str, Any]) -> str:
    """The URL of the test's own database on this machine's PostgreSQL (made once)."""
    name = isolation["id"]
    if "database" not in isolation:
        _pg_admin(project, f'CREATE DATABASE "{name}"')
        isolation["cleanup"].append(
            lambda: _pg_admin(project, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )
        base = LOCAL_SERVICES["postgres"]["DATABASE_URL"]
        isolation["database"] = base.rsplit("/", 1)[0] + "/" + name
    return str(isolation["database"])


def wait_for(url: str, running: Running, seconds: float = 60) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if not running.engine.running(running.name):
                break
            time.sleep(0.2)
    raise AssertionError(f"no answer at {url}\n{running.engine.logs(running.name)[-4000:]}")


def assert_clean_log(log: str) -> None:
    """No error, traceback or permission problem in a container's output, JSON lines only."""
    assert "Traceback" not in log, log
    assert "Read-only file system" not in log, log
    assert "Permission denied" not in log, log
    for line in log.splitlines():
        record = json.loads(line)
        assert record["level"] not in {"ERROR", "CRITICAL"}, line
        assert not re.search(r"Error while closing socket", record["message"]), line


def image_sets(built: Built, image: str | None = None) -> list[str]:
    """--set values pointing the chart at the image, on free ports (pods use the host network,
    where other processes on this machine may hold the chart's 8000)."""
    repository, tag = (image or built.image).rsplit(":", 1)
    values = yaml.safe_load(next(built.project.path.glob("charts/*/values.yaml")).read_text())
    ports = [f"{key}={free_port()}" for key in ("containerPort", "metricsPort") if key in values]
    return [f"image.repository={repository}", f"image.tag={tag}", *ports]


def rehearse_image(path: Path, sets: list[str]) -> tuple[Report, str]:
    out = io.StringIO()
    options = Options(
        path=path, sets=sets, probe_seconds=2, helm=tool("helm"), image=True, engine=tool("podman")
    )
    return run_rehearsal(options, out), out.getvalue()
