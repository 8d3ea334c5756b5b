"""The generated container image and docker-compose.yml, checked by real tools in every combination
(hadolint, checkov, the Dockerfile contract, .dockerignore, compose). The service run the way its
image runs it: test_container_sandbox.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from filelock import FileLock

from .container_support import UID, exec_form, healthcheck_probe, stages
from .support import CATALOG, INIT, Project, combo_id, matrix, tool

ProjectFactory = Callable[..., Project]
pytestmark = pytest.mark.e2e

COMBOS = matrix()
IDS = [combo_id(a) for a in COMBOS]
PYTHON_PATCH = {"3.11": "3.11.13", "3.12": "3.12.11", "3.13": "3.13.5"}


def run(*cmd: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


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
