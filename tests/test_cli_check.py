"""`svcgen check`: every generated combination passes; other repos get the verdicts they earn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .check_support import ALL_CHECKS, GOOD_NODE, results_of, svcgen, verdicts, write
from .conftest import ProjectFactory
from .support import combo_id, matrix


@pytest.mark.parametrize("answers", matrix(), ids=combo_id)
def test_a_generated_project_passes_every_check(
    project: ProjectFactory, answers: dict[str, Any]
) -> None:
    generated = project(answers, install=False)
    result = svcgen("check", str(generated.path), "--json")
    report = json.loads(result.stdout)
    assert len(report["services"]) == 1
    checks = report["services"][0]["checks"]
    not_passed = [c for c in checks if c["status"] != "PASS"]
    assert not_passed == [], "\n".join(
        f"{c['id']}: {c['reason']} ({c['file']}:{c['line']})" for c in not_passed
    )
    assert [c["id"] for c in checks] == ALL_CHECKS
    assert result.exit_code == 0


def test_the_table_on_a_generated_project(project: ProjectFactory) -> None:
    generated = project({}, install=False)
    result = svcgen("check", str(generated.path))
    assert result.exit_code == 0, result.output
    assert "18 passed, 0 warnings, 0 failed" in result.stdout
    assert "Dockerfile" in result.stdout
    assert "FAIL" not in result.stdout


def test_an_empty_folder_is_no_service_exit_2(tmp_path: Path) -> None:
    for output in ("table", "json", "sarif"):
        result = svcgen("check", str(tmp_path), "--format", output)
        assert result.exit_code == 2
        assert "no service found" in result.stderr
        assert result.stdout == ""


def test_a_bare_repo_fails_and_lists_what_is_missing(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "flask\n", "app.py": "print('hi')\n"})
    result = svcgen("check", str(tmp_path))
    assert result.exit_code == 1
    out = result.stdout
    for missing in (
        "no code reads environment variables in 1 source files",
        "no liveness route",
        "no readiness route",
        "no JSON log formatter in 1 source files",
        "nothing handles SIGTERM",
        "no Dockerfile",
        "no Helm chart or Kubernetes manifests",
        "no CI workflow",
    ):
        assert missing in out
    assert "1 passed, 0 warnings, 17 failed" in out


def test_json_shape(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "flask\n", "app.py": "print('hi')\n"})
    result = svcgen("check", str(tmp_path), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert set(report) == {"schema", "path", "passed", "summary", "services"}
    assert report["schema"] == "svcgen-check/2"
    assert report["path"] == str(tmp_path.resolve())
    assert report["passed"] is False
    (service,) = report["services"]
    assert set(service) == {"name", "repo", "path", "template", "passed", "summary", "checks"}
    assert (service["name"], service["repo"], service["path"]) == (tmp_path.name, ".", ".")
    assert sum(service["summary"].values()) == len(service["checks"]) == len(ALL_CHECKS)
    assert service["summary"] == report["summary"]
    for check in service["checks"]:
        assert set(check) == {"id", "title", "status", "reason", "file", "line", "details"}
        assert check["status"] in {"PASS", "WARN", "FAIL"}
        assert check["reason"]
        assert check["file"]
        assert check["line"] is None or check["line"] >= 1
    assert result.stdout == svcgen("check", str(tmp_path), "--format", "json").stdout


def test_check_on_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    result = svcgen("check", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "is not a folder" in result.stderr


NAIVE = {
    "app.py": """
        import logging
        import os
        from flask import Flask
        logging.basicConfig(level=logging.INFO)
        app = Flask(__name__)
        DATABASE_PASSWORD = "Sup3rS3cretPassw0rd"
        @app.route("/health")
        def health():
            return "ok"
    """,
    "Dockerfile": """
        FROM python:latest
        COPY . /app
        RUN pip install -r /app/requirements.txt
        CMD python /app/app.py
    """,
    "k8s/deployment.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: naive}
        spec:
          template:
            spec:
              containers:
                - name: app
                  image: naive:latest
    """,
}


def test_a_naive_tutorial_repo_fails_where_it_should(tmp_path: Path) -> None:
    got = verdicts(write(tmp_path, NAIVE))
    assert got == {
        "config-env": "FAIL",  # importing os is not reading the environment
        "no-secrets": "FAIL",
        "health-live": "WARN",  # a lone /health
        "health-ready": "FAIL",
        "json-logs": "FAIL",
        "graceful-shutdown": "WARN",  # shell-form CMD: sh is PID 1
        "docker-multistage": "FAIL",
        "docker-nonroot": "FAIL",
        "docker-healthcheck": "FAIL",
        "docker-pinned": "FAIL",
        "docker-ignore": "FAIL",
        "k8s-probes": "FAIL",
        "k8s-resources": "FAIL",
        "k8s-security": "FAIL",
        "k8s-hpa": "FAIL",
        "k8s-pdb": "FAIL",
        "k8s-networkpolicy": "FAIL",
        "ci-tests": "FAIL",
    }
    results = results_of(tmp_path)
    assert results["no-secrets"].file == "app.py:6"
    assert results["no-secrets"].reason == "password literal at app.py:6 (Sup3…, 19 chars)"
    assert "python:latest" in results["docker-pinned"].reason
    assert results["graceful-shutdown"].file == "Dockerfile:4"


def test_any_repo_not_only_ours_node_and_plain_manifests(tmp_path: Path) -> None:
    got = verdicts(write(tmp_path, GOOD_NODE))
    assert got == dict.fromkeys(ALL_CHECKS, "PASS")
    result = svcgen("check", str(tmp_path))
    assert result.exit_code == 0
    assert "deploy/app.yaml" in result.stdout
