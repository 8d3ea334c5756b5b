"""The generated Dockerfile built, unmodified, by a real OCI engine and the image run the way its
chart runs it.

The engine is Podman 5 (Debian 13) that scripts/install-engine.sh provides (`make engine`, run by
`make test`), with stand-in base images under the Dockerfile's exact FROM names (no registry is
reachable here; see the script). Each image is built once per session (FastAPI and Flask, with no
services and with all of them; no layer cache kept, and removed at the end of the session) and
its containers get the security settings, command and environment of the rendered chart, never
restated here; the backing services are this machine's, reached on the host network.

`svcgen rehearse --image` runs the same images (the chart pointed at them with --set image.*),
so it adds no build: one rehearsal per framework with all services, and two broken variants.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from svcgen.rehearse.engine import Engine, find_engine, run_spec

from .conftest import ProjectFactory
from .image_support import (
    BARE,
    BUILT,
    COMBOS,
    EXTRA,
    FULL,
    Built,
    Running,
    assert_clean_log,
    build,
    database,
    image_name,
    image_sets,
    local_env,
    rehearse_image,
    wait_for,
)
from .support import IN_CI, REPO, combo_id, tool
from .test_rehearse import QUICK, backing_services, edited_copy, failure, isolation

__all__ = ["isolation"]  # a fixture, shared with test_rehearse

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("image")]

#: Seconds after start at which the stop test sends SIGTERM (start-up included).
STOP_AFTER = (0.3, 1.0, 2.0)
SIGKILLED = 137  # 128 + SIGKILL: the grace period ran out


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The engine, with base images for every Python these tests build on (idempotent); the
    images built here are removed at the end."""
    podman = tool("podman")
    pythons = sorted({str(a["python_version"]) for a in COMBOS})
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "install_engine.py")]
        + [arg for p in pythons for arg in ("--python", p)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        message = f"scripts/install-engine.sh failed:\n{done.stdout}{done.stderr}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    found = find_engine(podman)
    yield found
    for image in [*(b.image for b in BUILT.values()), *EXTRA]:
        found.remove_image(image)


@pytest.fixture(scope="module", params=COMBOS, ids=[combo_id(a) for a in COMBOS])
def built(request: pytest.FixtureRequest, engine: Engine, project: ProjectFactory) -> Built:
    return build(engine, project(request.param))


@pytest.fixture(params=FULL, ids=[combo_id(a) for a in FULL])
def built_full(request: pytest.FixtureRequest, engine: Engine, project: ProjectFactory) -> Built:
    return build(engine, project(request.param))


@pytest.fixture(params=BARE, ids=[combo_id(a) for a in BARE])
def built_bare(request: pytest.FixtureRequest, engine: Engine, project: ProjectFactory) -> Built:
    return build(engine, project(request.param))


@pytest.fixture
def start(engine: Engine, isolation: dict[str, Any]) -> Iterator[Any]:
    """start(built, kind, suffix) -> Running: one container of a rendered workload (with
    PostgreSQL, all of a test's containers share a database of their own)."""
    names: list[str] = []

    def make(built: Built, kind: str = "Deployment", suffix: str = "") -> Running:
        pod_spec = built.workload(kind, suffix)
        container = pod_spec["containers"][0]
        name = f"svcgen-test-{uuid.uuid4().hex[:10]}"
        env = local_env(built, pod_spec, container)
        if "postgres" in built.project.answers["services"]:
            env["DATABASE_URL"] = database(built.project, isolation)
        spec = run_spec(built.image, name, pod_spec, container, env)
        names.append(name)
        engine.start(spec)
        return Running(engine, spec, float(pod_spec.get("terminationGracePeriodSeconds", 30)))

    yield make
    for name in names:
        engine.remove(name)


def test_image_runs_as_its_pod(built: Built, start: Any) -> None:
    """Chart security settings, health, the image's HEALTHCHECK, draining and a clean exit."""
    engine = find_engine(tool("podman"))
    pod_spec = built.workload("Deployment")
    if "postgres" in built.project.answers["services"]:  # the pre-install hook, as Helm runs it
        job = start(built, "Job", "-migrations")
        assert engine.wait(job.name, timeout=job.grace + 120) == 0, engine.logs(job.name)
    app = start(built)
    context = {**pod_spec["securityContext"], **pod_spec["containers"][0]["securityContext"]}
    assert wait_for(app.url("/health/live"), app).status_code == 200
    ready = httpx.get(app.url("/health/ready"), timeout=10)
    assert ready.status_code == 200, ready.text
    if built.project.answers["services"]:
        checks = ready.json()["checks"]  # the services readiness depends on: all pass
        assert checks, ready.text
        assert set(checks) <= set(built.project.answers["services"]), ready.text
    # the chart's settings, as the process sees them
    probe = (
        "import os\n"
        "print(os.getuid(), os.getgid())\n"
        "status = dict(l.split(':\\t', 1) for l in open('/proc/1/status').read().splitlines())\n"
        "print(status['CapEff'].strip(), status['NoNewPrivs'].strip())\n"
        "for d in ('/app', '/', '/tmp'):\n"
        "    try:\n"
        "        open(os.path.join(d, '.w'), 'w').close(); print(d, 'writable')\n"
        "    except OSError as e:\n"
        "        print(d, e.strerror)\n"
    )
    seen = engine.exec(app.name, ["python", "-c", probe]).stdout.splitlines()
    assert seen[0] == f"{context['runAsUser']} {context['runAsGroup']}"
    assert context["capabilities"]["drop"] == ["ALL"]
    no_new_privs = "1" if context["allowPrivilegeEscalation"] is False else "0"
    assert seen[1] == f"0000000000000000 {no_new_privs}"
    assert context["readOnlyRootFilesystem"] is True
    assert seen[2:] == ["/app Read-only file system", "/ Read-only file system", "/tmp writable"]
    assert set(app.spec.tmpfs) == {
        m["mountPath"]
        for m in pod_spec["containers"][0]["volumeMounts"]
        if "emptyDir" in next(v for v in pod_spec["volumes"] if v["name"] == m["name"])
    }
    # the image's own HEALTHCHECK, through the engine (podman keeps it: built in Docker format)
    config = engine.image_config(built.image)
    healthcheck = config.get("Healthcheck") or config["Config"].get("Healthcheck")  # podman, docker
    assert healthcheck["Test"][0] == "CMD", config
    check = engine.healthcheck(app.name)
    assert check.returncode == 0, check.stdout + check.stderr
    # SIGTERM: readiness 503 while it drains, then exit 0 within the grace period
    engine.signal(app.name, "TERM")
    statuses = []
    while engine.running(app.name):
        try:
            statuses.append(httpx.get(app.url("/health/ready"), timeout=2).status_code)
        except httpx.TransportError:
            break
        time.sleep(0.1)
    code = engine.wait(app.name, timeout=app.grace)
    log = engine.logs(app.name)
    assert code == 0, log[-4000:]
    assert 503 in statuses, statuses
    assert_clean_log(log)


def test_migration_and_worker_commands_run_from_the_image(built_full: Built, start: Any) -> None:
    engine = find_engine(tool("podman"))
    job = start(built_full, "Job", "-migrations")
    deadline = float(
        next(d for d in built_full.docs if d["kind"] == "Job")["spec"]["activeDeadlineSeconds"]
    )
    code = engine.wait(job.name, timeout=deadline)
    log = engine.logs(job.name)
    assert code == 0, log[-4000:]
    assert_clean_log(log)
    worker = start(built_full, "Deployment", "-worker")
    began = time.monotonic()
    while '"consuming"' not in engine.logs(worker.name) and time.monotonic() - began < 60:
        assert engine.running(worker.name), engine.logs(worker.name)[-4000:]
        time.sleep(0.2)
    assert '"consuming"' in engine.logs(worker.name)
    engine.signal(worker.name, "TERM")
    code = engine.wait(worker.name, timeout=worker.grace)
    log = engine.logs(worker.name)
    assert code == 0, log[-4000:]
    assert '"stopped"' in log
    assert_clean_log(log)


@pytest.mark.parametrize("after", STOP_AFTER)
def test_sigterm_at_any_moment_stops_the_container(
    built_bare: Built, start: Any, after: float
) -> None:
    """Start-up included: PID 1 (dumb-init) passes SIGTERM on at once, so the grace period never
    runs out (which would end in SIGKILL, exit 137)."""
    engine = find_engine(tool("podman"))
    app = start(built_bare)
    time.sleep(after)
    engine.stop(app.name, app.grace)
    code = engine.exit_code(app.name)
    assert not engine.running(app.name)
    assert code != SIGKILLED, engine.logs(app.name)[-4000:]
    assert code in {0, 143}, (code, engine.logs(app.name)[-4000:])  # 143: Python not yet up


def test_image_holds_no_build_tools(built: Built) -> None:
    """The final stage: the venv and the base image; no uv, no uv cache, no compilers; labels."""
    engine = find_engine(tool("podman"))
    config = engine.image_config(built.image)["Config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == "0.1.0-test"
    assert labels["org.opencontainers.image.revision"] == "0" * 40
    assert labels["org.opencontainers.image.title"] == built.project.slug
    assert config["Entrypoint"][0] == "dumb-init"
    look = engine(
        "run", "--rm", "--network", "none", "--entrypoint", "sh", built.image, "-c",
        "for c in uv uvx gcc cc make; do command -v $c; done; test -e /root/.cache && echo cache;"
        " ls -A /app",
    ).stdout  # fmt: skip
    assert look.split() == [".venv"], look


# --- svcgen rehearse --image: the chart's pods from these images ----------------------------------


def test_rehearse_image_passes_with_all_services(
    built_full: Built, isolation: dict[str, Any]
) -> None:
    """The installed `svcgen rehearse --image`: the migration Job, the web and the worker pods
    run from the image with the engine, with this machine's services."""
    generated = built_full.project
    env, sets = backing_services(generated, isolation)
    command = [str(Path(sys.executable).with_name("svcgen")), "rehearse", str(generated.path)]
    command += ["--image", "--engine", tool("podman"), "--probe-seconds", "2"]
    for item in [*image_sets(built_full), *sets, *QUICK]:
        command += ["--set", item]
    command += [f"--env={key}={value}" for key, value in env.items()]
    path = f"{Path(tool('helm')).parent}:/usr/bin:/bin"
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, env={"PATH": path}
    )
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("rehearsal PASS"), text
    rows = [line.split() for line in lines if line.startswith("PASS")]
    passed = {(row[1].split(":")[0], row[2]) for row in rows}
    slug = generated.slug
    assert (f"Job/{slug}-migrations", "job") in passed, text
    for pod in (f"Deployment/{slug}", f"Deployment/{slug}-worker"):
        assert (pod, "start") in passed, text
        assert (pod, "SIGTERM") in passed, text
    for action in ("startup", "liveness", "readiness", "preStop"):
        assert (f"Deployment/{slug}", action) in passed, text
    started = [line for line in lines if " start " in line]
    assert len(started) == 2, text
    assert all(f"podman container svcgen-rehearse-{slug}" in line for line in started), text
    assert f"PASS  image/{built_full.image}" in done.stdout, text
    print(done.stdout)


#: The broken variants rehearse one image (Flask, no services): what fails is framework-neutral.
BROKEN = next(a for a in BARE if a["framework"] == "flask")


@pytest.fixture
def built_broken(engine: Engine, project: ProjectFactory) -> Built:
    return build(engine, project(BROKEN))


def test_rehearse_image_fails_on_a_wrong_readiness_path(
    built_broken: Built, tmp_path: Path
) -> None:
    generated = built_broken.project
    copy = edited_copy(
        generated,
        tmp_path / generated.slug,
        {
            f"charts/{generated.slug}/templates/deployment.yaml": (
                "path: /health/ready",
                "path: /health/readyz",
            )
        },
    )
    report, text = rehearse_image(copy, [*image_sets(built_broken), *QUICK])
    assert "/health/readyz -> 404" in failure(report, "readiness", text), text


def test_rehearse_image_fails_when_the_image_user_cannot_write(
    built_broken: Built, engine: Engine, tmp_path: Path
) -> None:
    """The image's entry point appends to a file in its workdir (owned by root, on the read-only
    root filesystem): the app exits at start, and the report names the file and the error."""
    config = engine.image_config(built_broken.image)["Config"]
    writes = [*config["Entrypoint"][:3], "sh", "-c", 'exec "$@" 2>>server.log', "sh"]
    (tmp_path / "Containerfile").write_text(
        f"FROM {built_broken.image}\n"
        f"ENTRYPOINT {json.dumps(writes + config['Entrypoint'][3:])}\n"
        f"CMD {json.dumps(config['Cmd'])}\n"
    )
    image = image_name("writes-server-log")
    EXTRA.append(image)
    engine.build(tmp_path, image, pull=False, layers=False)
    report, text = rehearse_image(
        built_broken.project.path, [*image_sets(built_broken, image), *QUICK]
    )
    detail = failure(report, "startup", text)
    assert "server.log: Read-only file system" in detail, text
