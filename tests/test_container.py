"""The generated container image and docker-compose.yml, checked by real tools in every combination,
and the service run the way its image runs it (uid 10001, read-only root, tmpfs /tmp) under
bubblewrap, since no container engine runs here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from filelock import FileLock

from .support import CATALOG, INIT, LOCAL_SERVICES, SERVICES, Project, combo_id, matrix, tool

ProjectFactory = Callable[..., Project]
pytestmark = pytest.mark.e2e

COMBOS = matrix()
IDS = [combo_id(a) for a in COMBOS]
PYTHON_PATCH = {"3.11": "3.11.13", "3.12": "3.12.11", "3.13": "3.13.5"}
UID = 10001


def run(*cmd: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


# --- the Dockerfile as a runtime sees it -------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for key, rest in self.instructions if key == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"no {keyword} in stage {self.name}"
        return found[-1]

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for rest in self.all("ENV"):
            for part in shlex.split(rest):
                key, _, value = part.partition("=")
                env[key] = value
        return env


def stages(dockerfile: Path) -> list[Stage]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    result: list[Stage] = []
    logical = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(words[0], name))
        else:
            assert result, f"{keyword} before FROM"
            result[-1].instructions.append((keyword, rest))
    return result


def exec_form(rest: str) -> list[str]:
    parsed = json.loads(rest)
    assert isinstance(parsed, list)
    assert all(isinstance(item, str) for item in parsed)
    return parsed


def healthcheck_probe(stage: Stage) -> list[str]:
    healthcheck = stage.last("HEALTHCHECK")
    assert " CMD " in healthcheck, healthcheck
    return exec_form(healthcheck.split(" CMD ", 1)[1])


# --- static checks, every combination --------------------------------------------------------


@pytest.mark.parametrize("answers", COMBOS, ids=IDS)
def test_hadolint_reports_nothing(project: ProjectFactory, answers: dict[str, Any]) -> None:
    p = project(answers, install=False)
    result = run(
        tool("hadolint"), "--no-color", "--failure-threshold", "style", "Dockerfile", cwd=p.path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def checkov(path: Path, *frameworks: str) -> list[dict[str, Any]]:
    """checkov's reports (one per framework that found something to scan).

    checkov's default scope: its secrets scan reads Dockerfiles and YAML/JSON files and skips
    hidden ones (.env.example, .github/). Widened (--enable-secret-scan-all-files,
    CKV_IGNORE_HIDDEN_DIRECTORIES=false) it also flags the example `user:password@` URLs in
    .env.example, settings.py, tests/conftest.py and the CI workflow (CKV_SECRET_4)."""
    result = run(
        tool("checkov"), "-d", path, "--framework", *frameworks, "--skip-download",
        "--compact", "-o", "json", cwd=path,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr[-3000:]
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def failed_checks(reports: list[dict[str, Any]]) -> list[str]:
    return [
        f"{c['check_id']} {c['file_path']}:{c['file_line_range']} {c['check_name']}"
        for report in reports
        for c in report.get("results", {}).get("failed_checks", [])
    ]


@pytest.fixture(scope="session")
def checkov_by_combo(project: ProjectFactory, projects_dir: Path) -> dict[str, dict[str, Any]]:
    """One checkov run over every combination (its start-up dominates; one run, not 16),
    shared by the xdist workers: {combo id: {"failed": [...], "dockerfile_passed": n}}."""
    cache = projects_dir / "container-checkov.json"
    with FileLock(f"{cache}.lock"):
        if not cache.exists():
            stage = projects_dir / "container-checkov"
            shutil.rmtree(stage, ignore_errors=True)
            for answers in COMBOS:
                # hidden files and caches stay out, as checkov's own walk leaves them out
                shutil.copytree(
                    project(answers, install=False).path,
                    stage / combo_id(answers),
                    ignore=shutil.ignore_patterns(".*", "__pycache__"),
                )
            reports = checkov(stage, "dockerfile", "secrets")
            results: dict[str, dict[str, Any]] = {}
            for answers in COMBOS:
                prefix = f"/{combo_id(answers)}/"
                results[combo_id(answers)] = {
                    "failed": [
                        f for f in failed_checks(reports) if f.split(" ")[1].startswith(prefix)
                    ],
                    "dockerfile_passed": sum(
                        c["file_path"].startswith(prefix)
                        for r in reports
                        if r.get("check_type") == "dockerfile"
                        for c in r["results"]["passed_checks"]
                    ),
                }
            attributed = sum(len(r["failed"]) for r in results.values())
            assert attributed == len(failed_checks(reports)), failed_checks(reports)
            cache.write_text(json.dumps(results), encoding="utf-8")
    loaded: dict[str, dict[str, Any]] = json.loads(cache.read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize("answers", COMBOS, ids=IDS)
def test_checkov_dockerfile_and_secrets_zero_failed(
    checkov_by_combo: dict[str, dict[str, Any]], answers: dict[str, Any]
) -> None:
    found = checkov_by_combo[combo_id(answers)]
    assert found["failed"] == []
    assert found["dockerfile_passed"] > 0, "checkov scanned no Dockerfile"


def test_the_static_checks_can_fail(project: ProjectFactory, tmp_path: Path) -> None:
    """The same invocations flag planted secrets (Dockerfile, compose), a root user and an
    unpinned apt-get: the zero counts above are not for want of looking."""
    p = project(COMBOS[0], install=False)
    dockerfile = (p.path / "Dockerfile").read_text(encoding="utf-8")
    fake_key = "AKIA" + "QWERTYUIOPASDFGH"
    fake_secret = "x7Kp2Lq9Vb4Nm8Rt1Yz6Wc3Hd5Fg0Js7Ua2Ie9Ok"
    planted = dockerfile.replace(
        "USER 10001:10001",
        "USER root\nRUN apt-get update && apt-get install -y curl\n"
        f"ENV AWS_ACCESS_KEY_ID={fake_key} AWS_SECRET_ACCESS_KEY={fake_secret}",
    )
    assert planted != dockerfile
    (tmp_path / "Dockerfile").write_text(planted, encoding="utf-8")
    compose = (p.path / "docker-compose.yml").read_text(encoding="utf-8")
    planted_url = "    environment:\n      DATABASE_URL: postgresql://app:Xq7rT2vLp9@db:5432/app\n"
    compose = compose.replace("    <<: *service\n", "    <<: *service\n" + planted_url, 1)
    (tmp_path / "docker-compose.yml").write_text(compose, encoding="utf-8")
    failed = failed_checks(checkov(tmp_path, "dockerfile", "secrets"))
    assert any(f.startswith("CKV_SECRET_2 ") and "/Dockerfile:" in f for f in failed), failed
    assert any(f.startswith("CKV_SECRET_4 ") and "/docker-compose.yml:" in f for f in failed), (
        failed
    )
    assert any(f.startswith("CKV_DOCKER_8 ") for f in failed), failed  # last USER is root
    lint = run(tool("hadolint"), "--no-color", "Dockerfile", cwd=tmp_path)
    assert lint.returncode == 1
    assert "DL3008" in lint.stdout  # unpinned apt packages


@pytest.mark.parametrize("answers", COMBOS, ids=IDS)
def test_dockerfile_contract(project: ProjectFactory, answers: dict[str, Any]) -> None:
    p = project(answers, install=False)
    all_stages = stages(p.path / "Dockerfile")
    runtime = all_stages[-1]
    python = f"python:{PYTHON_PATCH[p.answers['python_version']]}-slim-bookworm"
    # multi-stage; every base pinned; builder and runtime share the interpreter the venv points at
    assert len(all_stages) >= 2
    bases = [s.base for s in all_stages]
    assert all(re.search(r":\d+\.\d+\.\d+", base) for base in bases), bases
    assert runtime.base == python
    builder = next(s for s in all_stages if s.name == "builder")
    assert builder.base == python
    assert any("uv sync --locked --no-dev --no-editable" in r for r in builder.all("RUN"))
    # the runtime receives the venv and nothing else: no uv, no sources, no package manager runs
    copies = runtime.all("COPY")
    assert copies == ["--from=builder /app/.venv /app/.venv"]
    assert not any(re.search(r"\b(apt-get|apt|pip|uv)\b", r) for r in runtime.all("RUN"))
    assert runtime.last("USER") == f"{UID}:{UID}"
    env = runtime.env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/app/.venv/bin:")
    assert env["PORT"] == str(p.answers["port"])
    assert runtime.last("EXPOSE") == str(p.answers["port"])
    probe = healthcheck_probe(runtime)
    assert probe[:2] == ["python", "-c"]
    assert "/health/live" in probe[2]
    assert "curl" not in runtime.last("HEALTHCHECK")
    assert exec_form(runtime.last("ENTRYPOINT")) == [*INIT, "python", "-m", p.package]
    assert exec_form(runtime.last("CMD")) == ["serve"]
    labels = " ".join(runtime.all("LABEL"))
    for key in ("title", "description", "version", "revision", "created", "source"):
        assert f"org.opencontainers.image.{key}=" in labels
    args = {re.sub(r"=.*", "", a) for a in runtime.all("ARG")}
    assert set(re.findall(r"\$\{(\w+)\}", labels)) <= args


@pytest.mark.parametrize("answers", COMBOS, ids=IDS)
def test_dockerignore_keeps_secrets_and_environments_out(
    project: ProjectFactory, answers: dict[str, Any]
) -> None:
    p = project(answers, install=False)
    rules = [
        line.strip()
        for line in (p.path / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"  # an allowlist: .env, .venv, .git, tests never reach the context
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    assert allowed == {"pyproject.toml", "uv.lock", "README.md", "LICENSE", "src"}
    sent = re.findall(r"^COPY (?!--from)(.+) \S+$", (p.path / "Dockerfile").read_text(), re.M)
    assert {w for line in sent for w in line.split()} <= allowed


@pytest.mark.parametrize("answers", COMBOS, ids=IDS)
def test_compose_is_valid_and_complete(project: ProjectFactory, answers: dict[str, Any]) -> None:
    p = project(answers, install=False)
    schema = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml",
        cwd=p.path,
    )  # fmt: skip
    assert schema.returncode == 0, schema.stdout + schema.stderr

    compose = yaml.safe_load((p.path / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    chosen = set(p.answers["services"])
    expected = {"app"} | chosen
    if "postgres" in chosen:
        expected.add("migrate")
    if "rabbitmq" in chosen:
        expected.add("worker")
    assert set(services) == expected
    image = f"{p.answers['container_registry']}/{p.answers['image_name']}:dev"
    for name in expected - chosen:  # the service's own containers: one image, the pod's limits
        svc = services[name]
        assert svc["image"] == image
        assert svc["user"] == f"{UID}:{UID}"
        assert svc["read_only"] is True
        assert svc["tmpfs"] == ["/tmp"]
        assert svc["cap_drop"] == ["ALL"]
        assert svc["env_file"] == [{"path": ".env", "required": False}]
        waits = svc.get("depends_on", {})
        for backing in chosen:
            if name == "migrate" and backing != "postgres":
                continue
            assert waits[backing] == {"condition": "service_healthy"}, (name, backing)
        if "postgres" in chosen and name != "migrate":
            assert waits["migrate"] == {"condition": "service_completed_successfully"}
    for backing in chosen:
        svc = services[backing]
        assert re.search(r":\d+\.\d+(\.\d+)?(-[a-z]+)*$", svc["image"]), svc["image"]
        assert svc["healthcheck"]["test"], backing
    assert services["app"]["ports"] == [f"{p.answers['port']}:{p.answers['port']}"]
    # the commands exist in the generated service
    package = p.path / "src" / p.package
    if "postgres" in chosen:
        assert services["migrate"]["command"] == ["migrate"]
        assert '"migrate"' in (package / "__main__.py").read_text(encoding="utf-8")
    if "rabbitmq" in chosen:
        assert services["worker"]["entrypoint"] == [*INIT, "python", "-m", f"{p.package}.worker"]
        assert services["worker"]["command"] == []
        assert (package / "worker.py").is_file()
    env = services["app"].get("environment", {})
    assert env == {CATALOG[s]["env"]: CATALOG[s]["urls"]["compose"] for s in chosen}


# --- the image's constraints, for real ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sandbox(project: Project, command: list[str], env: dict[str, str]) -> list[str]:
    """bwrap as the image runs: uid/gid 10001, no capabilities, read-only /, tmpfs /tmp, only the
    image's environment. /app can't be created on a read-only /, so the venv stays where it is."""
    argv = [
        tool("bwrap"), "--unshare-user", "--uid", str(UID), "--gid", str(UID),
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session",
        "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        "--perms", "1777", "--tmpfs", "/tmp",
        # the tmpfs hides a project generated under /tmp: bind it back, read-only
        "--ro-bind", str(project.path), str(project.path),
        "--chdir", "/", "--clearenv",
    ]  # fmt: skip
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return [*argv, "--", *command]


def descendants(pid: int) -> Iterator[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            yield child
            todo.append(child)


def is_server(pid: int, package: str) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"python" in Path(argv[0].decode()).name.encode() and package.encode() in argv


# Each framework without services (readiness too) and with all of them (liveness: it checks no
# dependency, so the URLs need only be valid).
RUNTIME_COMBOS = [a for a in COMBOS if len(a["services"]) in (0, len(SERVICES))]


@pytest.mark.parametrize("answers", RUNTIME_COMBOS, ids=[combo_id(a) for a in RUNTIME_COMBOS])
def test_service_runs_like_its_image(project: ProjectFactory, answers: dict[str, Any]) -> None:
    p = project(answers)
    runtime = stages(p.path / "Dockerfile")[-1]
    venv_bin = str(p.path / ".venv" / "bin")
    env = {k: v.replace("/app/.venv", str(p.path / ".venv")) for k, v in runtime.env().items()}
    env["PATH"] = env["PATH"].replace("$PATH", "/usr/local/bin:/usr/bin:/bin")
    assert env["PATH"].startswith(venv_bin + ":")
    port = free_port()
    for service in p.answers["services"]:
        env.update(LOCAL_SERVICES[service])
    env.update(
        PORT=str(port), HOME="/nonexistent", LANG="C.UTF-8", DRAIN_SECONDS="0", SHUTDOWN_TIMEOUT="5"
    )
    command = exec_form(runtime.last("ENTRYPOINT")) + exec_form(runtime.last("CMD"))
    assert command[: len(INIT) + 1] == [*INIT, "python"]
    # what PATH resolves `dumb-init` and `python` to inside the image
    command[0] = f"{venv_bin}/dumb-init"
    command[len(INIT)] = f"{venv_bin}/python"

    proc = subprocess.Popen(
        sandbox(p, command, env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        live = ready = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                live = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)
                if not p.answers["services"]:
                    ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert live is not None, f"no answer on :{port}; exit {proc.poll()}"
        assert live.status_code == 200
        if not p.answers["services"]:
            assert ready is not None
            assert ready.status_code == 200, ready.text
        # the image's HEALTHCHECK, run in a sandbox of its own, passes
        probe = healthcheck_probe(runtime)
        probe[0] = f"{venv_bin}/python"
        check = subprocess.run(sandbox(p, probe, env), capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        # the server runs as uid 10001 in its user namespace
        server = [pid for pid in descendants(proc.pid) if is_server(pid, p.package)]
        assert server, "server process not found"
        uid_map = Path(f"/proc/{server[0]}/uid_map").read_text().split()
        assert uid_map[0] == str(UID)
        # a clean stop on SIGTERM, with nothing in the way on a read-only root
        os.kill(server[0], signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    # and the same HEALTHCHECK fails once nothing answers
    down = subprocess.run(sandbox(p, probe, env), capture_output=True, text=True, timeout=30)
    assert down.returncode == 1
    assert "Read-only file system" not in output
    assert "Permission denied" not in output
    for line in output.splitlines():
        assert json.loads(line)["level"] != "ERROR", line
