"""`svcgen rehearse`: the chart's pods run locally as a kubelet would run them.

Unit tests pin the Kubernetes semantics (environment, command, sandbox mounts); the e2e tests
rehearse every combination with default and production values against this machine's
PostgreSQL, Redis and RabbitMQ and the tests' S3 server, and prove that each seam between chart
and app is caught.

All rehearsals bind the app's port (8000) on the host network, so they take turns (a lock per
port inside `svcgen rehearse`); they share one xdist group so that one worker runs them one
after another while the other worker runs the rest of the suite.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from svcgen.dockerfile import parse_dockerfile
from svcgen.rehearse.report import Report
from svcgen.rehearse.run import Options, run_rehearsal
from svcgen.rehearse.standin import ImageStandIn

from .conftest import ProjectFactory
from .s3_server import s3_server
from .support import LOCAL_SERVICES, Project, combo_id, matrix, tool
from .test_dockerfile import DOCKERFILE

REHEARSAL = [pytest.mark.e2e, pytest.mark.xdist_group("rehearse-port")]
PROBE_SECONDS = 2.0

# --- unit: the image stand-in and the report -----------------------------------------------------


def test_image_paths_map_to_the_project(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / "src").mkdir()
    stand_in = ImageStandIn(tmp_path, parse_dockerfile(tmp_path / "Dockerfile"))
    assert stand_in.map_value("/app/.venv/bin:/usr/bin") == f"{tmp_path}/.venv/bin:/usr/bin"
    assert stand_in.map_value("postgresql://u:p@db/app") == "postgresql://u:p@db/app"
    assert stand_in.map_argv(["/usr/local/bin/python3.12", "-m", "svc"])[0] == str(
        tmp_path / ".venv" / "bin" / "python"
    )
    # The workdir shows what the image holds there: the venv and the package, not .env & co.
    assert stand_in.workdir_view() == (
        str(tmp_path),
        [str(tmp_path / ".venv"), str(tmp_path / "src")],
    )


def test_report_fails_on_any_failed_step() -> None:
    out = io.StringIO()
    report = Report(out)
    report.add(True, "Deployment/web", "startup", "ok")
    report.info("Deployment/web", "note", "information only")
    assert report.ok
    report.add(False, "Deployment/web", "liveness", "GET /healthz -> 404")
    assert not report.ok
    assert out.getvalue().splitlines()[-1].startswith("FAIL  Deployment/web")


# --- e2e: every combination, default and production values ----------------------------------------


def _pg_admin(project: Project, sql: str) -> None:
    project.run(
        str(project.python),
        "-c",
        "import sys, psycopg\n"
        "with psycopg.connect(sys.argv[1], autocommit=True) as c: c.execute(sys.argv[2])",
        LOCAL_SERVICES["postgres"]["DATABASE_URL"],
        sql,
    )


def _delete_queue(project: Project, queue: str) -> None:
    project.run(
        str(project.python),
        "-c",
        "import asyncio, sys, aio_pika\n"
        "async def main():\n"
        "    async with await aio_pika.connect(sys.argv[1]) as connection:\n"
        "        await (await connection.channel()).queue_delete(sys.argv[2])\n"
        "asyncio.run(main())",
        LOCAL_SERVICES["rabbitmq"]["AMQP_URL"],
        queue,
    )


@pytest.fixture
def isolation(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Per-test names on the shared servers: a fresh database, queue and key prefix."""
    state: dict[str, Any] = {"id": f"rehearse_{uuid.uuid4().hex[:10]}", "cleanup": []}
    yield state
    for cleanup in reversed(state["cleanup"]):
        cleanup()


def backing_services(
    project: Project, isolation: dict[str, Any]
) -> tuple[dict[str, str], list[str]]:
    """--env overrides pointing at this machine's servers, and --set values for unique names."""
    services = project.answers["services"]
    name = isolation["id"]
    env: dict[str, str] = {}
    sets: list[str] = []
    if "postgres" in services:
        _pg_admin(project, f'CREATE DATABASE "{name}"')
        isolation["cleanup"].append(
            lambda: _pg_admin(project, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )
        base = LOCAL_SERVICES["postgres"]["DATABASE_URL"]
        env["DATABASE_URL"] = base.rsplit("/", 1)[0] + "/" + name
    if "redis" in services:
        env.update(LOCAL_SERVICES["redis"])
        sets.append(f"extraEnv.CACHE_KEY_PREFIX={name}")
    if "rabbitmq" in services:
        env.update(LOCAL_SERVICES["rabbitmq"])
        sets.append(f"extraEnv.EVENTS_QUEUE={name}.events")
        isolation["cleanup"].append(lambda: _delete_queue(project, f"{name}.events"))
    if "s3" in services:  # the tests' S3 server, a bucket of this test's own (no `_` in its name)
        env.update(s3_server().env(name.replace("_", "-")))
    return env, sets


def rehearse(
    project: Project,
    *,
    values: list[Path] | None = None,
    sets: list[str] | None = None,
    env: dict[str, str] | None = None,
    path: Path | None = None,
) -> tuple[Report, str]:
    out = io.StringIO()
    options = Options(
        path=path or project.path,
        values=values or [],
        sets=sets or [],
        env=env or {},
        probe_seconds=PROBE_SECONDS,
        helm=tool("helm"),
    )
    tool("bwrap")
    report = run_rehearsal(options, out)
    return report, out.getvalue()


VALUES = {"default": None, "prod": "values-prod.yaml"}


@pytest.mark.parametrize("values", list(VALUES))
@pytest.mark.parametrize("answers", matrix(), ids=combo_id)
@pytest.mark.e2e
@pytest.mark.xdist_group("rehearse-port")
def test_rehearsal_passes(
    project: ProjectFactory, isolation: dict[str, Any], answers: dict[str, Any], values: str
) -> None:
    generated = project(answers)
    env, sets = backing_services(generated, isolation)
    files = []
    if VALUES[values]:
        files.append(generated.path / "charts" / generated.slug / str(VALUES[values]))
    report, text = rehearse(generated, values=files, sets=sets, env=env)
    assert report.ok, text
    steps = {(s.subject.split(":")[0], s.action) for s in report.steps if s.ok}
    web = f"Deployment/{generated.slug}"
    for action in ("startup", "liveness", "readiness", "preStop", "SIGTERM"):
        assert (web, action) in steps, text
    if "postgres" in answers["services"]:
        assert (f"Job/{generated.slug}-migrations", "job") in steps, text
    if "rabbitmq" in answers["services"]:
        assert (f"Deployment/{generated.slug}-worker", "SIGTERM") in steps, text
    for key in env:  # every in-cluster URL was replaced, and said so
        assert f"override   {key}=" in text, text


# --- e2e: each seam between chart and app makes the rehearsal fail, naming the cause ------------

NEGATIVE = next(a for a in matrix() if a["framework"] == "flask" and a["services"] == ["redis"])
#: Shorter termination for the broken variants (the chart's defaults are covered above).
QUICK = ["lifecycle.preStopSeconds=1", "config.drainSeconds=0"]


def edited_copy(project: Project, dest: Path, edits: dict[str, tuple[str, str]]) -> Path:
    """The project copied (its .venv shared by a symlink) with `old` -> `new` in some files."""
    shutil.copytree(
        project.path, dest, symlinks=True, ignore=shutil.ignore_patterns(".venv", ".git")
    )
    (dest / ".venv").symlink_to(project.path / ".venv")
    for relative, (old, new) in edits.items():
        file = dest / relative
        text = file.read_text()
        assert old in text, f"{relative} no longer contains {old!r}: update this test"
        file.write_text(text.replace(old, new))
    return dest


def failure(report: Report, action: str, text: str) -> str:
    assert not report.ok, text
    found = [s.detail for s in report.failures if s.action == action]
    assert found, f"no failed {action!r} step:\n{text}"
    return found[0]


@pytest.fixture
def broken(project: ProjectFactory, isolation: dict[str, Any], tmp_path: Path) -> Any:
    """`broken(edits, sets)`: rehearse an edited copy of the NEGATIVE project."""
    generated = project(NEGATIVE)
    env, sets = backing_services(generated, isolation)

    def run(
        edits: dict[str, tuple[str, str]], extra: list[str] | None = None
    ) -> tuple[Report, str]:
        edits = {k.replace("CHART", f"charts/{generated.slug}"): v for k, v in edits.items()}
        copy = edited_copy(generated, tmp_path / generated.slug, edits)
        return rehearse(generated, path=copy, sets=[*sets, *QUICK, *(extra or [])], env=env)

    return run


@dataclass(frozen=True)
class Seam:
    """A broken variant: `edits` (file -> (old, new)) make `action` fail with each of `expect`."""

    id: str
    edits: dict[str, tuple[str, str]]
    action: str
    expect: tuple[str, ...]
    sets: tuple[str, ...] = ()
    #: the kubelet goes on with SIGTERM after a failed preStop hook: the app still stops cleanly
    stops_cleanly: bool = False


SEAMS = [
    Seam(
        "probe-path-the-app-does-not-serve",
        {"CHART/templates/deployment.yaml": ("path: /health/live", "path: /healthz")},
        "liveness",
        ("/healthz -> 404",),
    ),
    Seam(
        "container-port-differs-from-the-app-port",
        {
            "CHART/templates/deployment.yaml": (
                "containerPort: {{ .Values.containerPort }}",
                "containerPort: 8081",
            )
        },
        "startup",
        ("connection refused", "the container listens on 8000, 9464, not on 8081"),
        sets=("probes.startup.failureThreshold=8",),  # 16 s: the app is up (on 8000) by then
    ),
    Seam(
        "secret-key-ref-to-a-missing-key",
        {
            "CHART/templates/secret.yaml": (
                "{{ $name }}: {{ $value | b64enc | quote }}",
                "{{ $name | lower }}: {{ $value | b64enc | quote }}",
            )
        },
        "env",
        # ... and what the Secret does hold
        ("couldn't find key REDIS_URL in Secret default/", "redis_url"),
    ),
    Seam(  # e.g. an entry point that keeps its own log file next to the app
        "write-outside-tmp-with-a-read-only-root",
        {
            "Dockerfile": (
                'ENTRYPOINT ["dumb-init", "--single-child", "--", "python", "-m", ',
                'ENTRYPOINT ["dumb-init", "--single-child", "--", '
                '"sh", "-c", "exec python -m \\"$0\\" \\"$@\\" 2>>server.log", ',
            )
        },
        "startup",
        ("server.log: Read-only file system",),
    ),
    Seam(
        "pre-stop-command-missing-from-the-image",
        {
            "CHART/templates/deployment.yaml": (
                'command: ["sleep", ',
                'command: ["sleep-until-drained", ',
            )
        },
        "preStop",
        ("sleep-until-drained", "No such file or directory"),
        stops_cleanly=True,
    ),
]


@pytest.mark.parametrize("seam", SEAMS, ids=lambda seam: seam.id)
@pytest.mark.e2e
@pytest.mark.xdist_group("rehearse-port")
def test_each_seam_fails_its_step_naming_the_cause(broken: Any, seam: Seam) -> None:
    report, text = broken(seam.edits, list(seam.sets))
    detail = failure(report, seam.action, text)
    for expected in seam.expect:
        assert expected in detail, text
    if seam.stops_cleanly:
        assert any(s.action == "SIGTERM" and s.ok for s in report.steps), text


def rehearse_cli(
    generated: Project, sets: list[str], **env: str
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`svcgen rehearse` on `generated` as a user runs it: the installed command, a bare PATH."""
    svcgen = shutil.which("svcgen", path=str(Path(sys.executable).parent))
    assert svcgen, "svcgen is not installed in the test environment"
    command = [svcgen, "rehearse", str(generated.path), "--probe-seconds", "1"]
    for item in [*sets, *QUICK]:
        command += ["--set", item]
    path = f"{Path(tool('helm')).parent}:{Path(tool('bwrap')).parent}:/usr/bin:/bin"

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *extra],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"PATH": path, **env},
        )

    return run


@pytest.mark.e2e
@pytest.mark.xdist_group("rehearse-port")
def test_cli_exit_codes_and_report(project: ProjectFactory, isolation: dict[str, Any]) -> None:
    """Exit 0 when all passes; 1 when a step fails (here: the chart's in-cluster Redis URL)."""
    generated = project(NEGATIVE)
    env, sets = backing_services(generated, isolation)
    run = rehearse_cli(generated, sets)

    overrides = [f"--env={key}={value}" for key, value in env.items()]
    passing = run(*overrides)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert passing.stdout.rstrip().splitlines()[-1].startswith("rehearsal PASS")
    failing = run()  # no override: the pod reaches for redis://redis:6379, which isn't here
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert any(
        line.startswith("FAIL")
        and "readiness" in line
        and ("-> 503" in line or "no answer within" in line)
        for line in failing.stdout.splitlines()
    ), failing.stdout


@pytest.mark.e2e
@pytest.mark.xdist_group("rehearse-port")
def test_secrets_the_chart_does_not_render_come_from_env_files(
    project: ProjectFactory, isolation: dict[str, Any], tmp_path: Path
) -> None:
    """values-staging.yaml reads REDIS_URL through an ExternalSecret (and `existingSecret` names
    a Secret made elsewhere): the rehearsal takes its values from --env-file; without them the
    pods cannot start, and a malformed or missing file is a usage error (exit 2)."""
    generated = project(NEGATIVE)
    env, sets = backing_services(generated, isolation)
    staging = generated.path / "charts" / generated.slug / "values-staging.yaml"
    run = rehearse_cli(generated, sets, COLUMNS="300")

    env_file = tmp_path / "secrets.env"
    lines = ["# values of the store's secrets", ""]
    lines += [f"export {key}='{value}'" for key, value in env.items()]
    env_file.write_text("\n".join(lines) + "\n")

    external = run("-f", str(staging), "--env-file", str(env_file))
    assert external.returncode == 0, external.stdout + external.stderr
    assert "(made by ExternalSecret " in external.stdout, external.stdout
    assert external.stdout.rstrip().splitlines()[-1].startswith("rehearsal PASS")

    existing = run("--set", "existingSecret=made-elsewhere", "--env-file", str(env_file))
    assert existing.returncode == 0, existing.stdout + existing.stderr
    assert "Secret made-elsewhere (not rendered): keys REDIS_URL" in existing.stdout

    without = run("-f", str(staging))
    assert without.returncode == 1, without.stdout + without.stderr
    assert "give REDIS_URL with --env NAME=VALUE or --env-file" in without.stdout
    assert "CreateContainerConfigError" in without.stdout

    bad = tmp_path / "bad.env"
    bad.write_text("REDIS_URL redis://nowhere\n")
    for extra in (["--env-file", str(bad)], ["--env-file", str(tmp_path / "absent.env")]):
        refused = run("-f", str(staging), *extra)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "rehearsal" not in refused.stdout, "nothing ran"
    assert "bad.env:1: expected KEY=VALUE" in run("--env-file", str(bad)).stderr
