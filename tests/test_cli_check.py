"""`svcgen check`: every generated combination passes; other repos get the verdicts they earn."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from svcgen.check import Result as Verdict
from svcgen.check import audit
from svcgen.cli import app
from typer.testing import CliRunner, Result

from .conftest import ProjectFactory
from .support import combo_id, matrix

runner = CliRunner()

ALL_CHECKS = [
    "config-env", "no-secrets", "health-live", "health-ready", "json-logs", "graceful-shutdown",
    "docker-multistage", "docker-nonroot", "docker-healthcheck", "docker-pinned", "docker-ignore",
    "k8s-probes", "k8s-resources", "k8s-security", "k8s-hpa", "k8s-pdb", "k8s-networkpolicy",
    "ci-tests",
]  # fmt: skip


def svcgen(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "220"})


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def results_of(root: Path) -> dict[str, Verdict]:
    """The verdicts of the one service in `root`."""
    services = audit(root).services
    assert len(services) == 1, [s.path for s in services]
    return {r.id: r for r in services[0].results}


def verdicts(root: Path) -> dict[str, str]:
    return {key: r.status for key, r in results_of(root).items()}


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


GOOD_NODE = {
    "src/server.js": """
        const pino = require("pino")();
        const port = process.env.PORT || 3000;
        app.get("/livez", (req, res) => res.send("ok"));
        app.get("/readyz", (req, res) => res.send(ready ? "ok" : "draining"));
        process.on("SIGTERM", () => server.close());
    """,
    "src/server.test.js": 'test("x", () => { const password = "hunter2hunter2"; });',
    "Dockerfile": """
        ARG NODE_VERSION=20.11.1
        FROM node:${NODE_VERSION}-alpine AS build
        RUN npm ci
        FROM node:${NODE_VERSION}-alpine
        COPY --from=build /app /app
        USER 1000
        HEALTHCHECK CMD ["node", "/app/healthcheck.js"]
        CMD ["node", "/app/src/server.js"]
    """,
    ".dockerignore": ".git\nnode_modules\n.env\n",
    "deploy/app.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: api}
        spec:
          template:
            spec:
              securityContext:
                runAsNonRoot: true
                seccompProfile:
                  type: RuntimeDefault
              containers:
                - name: api
                  image: api:1.0.0
                  livenessProbe: {httpGet: {path: /livez, port: 3000}}
                  readinessProbe: {httpGet: {path: /readyz, port: 3000}}
                  resources:
                    requests: {cpu: 100m, memory: 128Mi}
                    limits: {memory: 256Mi}
                  securityContext:
                    allowPrivilegeEscalation: false
                    readOnlyRootFilesystem: true
                    capabilities:
                      drop: ["ALL"]
        ---
        apiVersion: autoscaling/v2
        kind: HorizontalPodAutoscaler
        metadata: {name: api}
        ---
        apiVersion: policy/v1
        kind: PodDisruptionBudget
        metadata: {name: api}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: api}
    """,
    ".gitlab-ci.yml": "test:\n  script:\n    - npm ci\n    - npm test\n",
    "config/db.env.example": "DATABASE_PASSWORD=${DATABASE_PASSWORD}\nAPI_TOKEN=changeme\n",
    "src/k8s.js": 'const is_secret = "secretKeyRef";\nconst token = getToken("api");\n',
}


def test_any_repo_not_only_ours_node_and_plain_manifests(tmp_path: Path) -> None:
    got = verdicts(write(tmp_path, GOOD_NODE))
    assert got == dict.fromkeys(ALL_CHECKS, "PASS")
    result = svcgen("check", str(tmp_path))
    assert result.exit_code == 0
    assert "deploy/app.yaml" in result.stdout


def image(
    user: str = "1000",
    base: str = "node:20.11.1",
    final: str = "node:20.11.1",
    check: str = "CMD true",
) -> str:
    """A Dockerfile that passes every check unless told otherwise."""
    return (
        f"FROM {base} AS b\nFROM {final}\nUSER {user}\nHEALTHCHECK {check}\n"
        'CMD ["node", "server.js"]\n'
    )


@pytest.mark.parametrize(
    ("change", "check", "status", "reason"),
    [
        (
            {"Dockerfile": image(user="node")},
            "docker-nonroot",
            "WARN",
            "a name, not a UID",
        ),
        (
            {"Dockerfile": image(user="0")},
            "docker-nonroot",
            "FAIL",
            "runs as root",
        ),
        (
            {"Dockerfile": image(final="node@sha256:" + "a" * 64, check="NONE")},
            "docker-healthcheck",
            "FAIL",
            "no HEALTHCHECK",
        ),
        (
            {"Dockerfile": "ARG BASE\n" + image(base="$BASE", final="b")},
            "docker-pinned",
            "WARN",
            "build argument",
        ),
        (
            {".dockerignore": "node_modules\n"},
            "docker-ignore",
            "WARN",
            "does not exclude .git, .env",
        ),
        (
            {"src/keys.js": "const k = 'AKIAABCDEFGHIJKLMNOP';\n"},
            "no-secrets",
            "FAIL",
            "AWS access key at src/keys.js:1 (AKIA…, 20 chars)",
        ),
        (
            {"src/db.js": "const url = 'postgres://app:s3cr3t-Pa55@db:5432/app';\n"},
            "no-secrets",
            "FAIL",
            "URL password at src/db.js:1 (s3cr…, 11 chars)",
        ),
        (
            {"deploy/extra.yaml": "apiVersion: v1\nkind: Pod\nspec:\n  hostNetwork: true\n"},
            "k8s-security",
            "FAIL",
            "hostNetwork",
        ),
        (
            {".gitlab-ci.yml": "build:\n  script: [docker build .]\n"},
            "ci-tests",
            "FAIL",
            "none runs tests",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and " " not in value else None,
)
def test_a_single_flaw_is_caught(
    tmp_path: Path, change: dict[str, str], check: str, status: str, reason: str
) -> None:
    write(tmp_path, {**GOOD_NODE, **change})
    results = results_of(tmp_path)
    assert results[check].status == status
    assert reason in results[check].reason
    others = [r for r in results.values() if r.id != check and r.status != "PASS"]
    assert others == [], "one flaw, one verdict"


def test_the_final_stage_inherits_user_and_healthcheck_from_its_base_stage(tmp_path: Path) -> None:
    dockerfile = (
        "FROM node:20.11.1 AS base\nUSER 1000\nHEALTHCHECK CMD true\n"
        'FROM base\nCMD ["node", "server.js"]\n'
    )
    assert verdicts(write(tmp_path, {**GOOD_NODE, "Dockerfile": dockerfile})) == dict.fromkeys(
        ALL_CHECKS, "PASS"
    )
    (tmp_path / "Dockerfile").write_text(dockerfile.replace("FROM base", "FROM node:20.11.1"))
    got = verdicts(tmp_path)
    assert (got["docker-nonroot"], got["docker-healthcheck"]) == ("FAIL", "FAIL")


def test_every_dockerfile_is_checked_and_the_worst_reported(tmp_path: Path) -> None:
    write(tmp_path, {**GOOD_NODE, "docker/worker.Dockerfile": image(user="0")})
    results = results_of(tmp_path)
    assert results["docker-nonroot"].status == "FAIL"
    assert results["docker-nonroot"].file == "docker/worker.Dockerfile:3"
    assert results["docker-healthcheck"].reason.endswith("(all 2 Dockerfiles)")


def test_a_helm_chart_is_inspected_without_rendering(tmp_path: Path) -> None:
    files = {k: v for k, v in GOOD_NODE.items() if not k.startswith("deploy/")}
    files |= {
        "chart/Chart.yaml": "apiVersion: v2\nname: api\nversion: 0.1.0\n",
        "chart/values.yaml": """
            resources: {}
            securityContext:
              runAsNonRoot: true
        """,
        "chart/templates/deployment.yaml": """
            apiVersion: apps/v1
            kind: Deployment
            spec:
              template:
                spec:
                  containers:
                    - name: {{ .Chart.Name }}
                      livenessProbe: {{- toYaml .Values.livenessProbe | nindent 12 }}
                      resources: {{- toYaml .Values.resources | nindent 12 }}
        """,
        "chart/ci/production-values.yaml": "autoscaling:\n  enabled: true\n",
        "chart/templates/hpa.yaml": "{{- if .Values.autoscaling.enabled }}\nkind: HorizontalPodAutoscaler\n{{- end }}\n",  # noqa: E501
    }
    results = results_of(write(tmp_path, files))
    assert results["k8s-probes"].status == "FAIL"
    assert "readinessProbe" in results["k8s-probes"].reason
    assert results["k8s-resources"].status == "FAIL", "resources: {} sets nothing"
    assert results["k8s-security"].status == "FAIL"
    assert "allowPrivilegeEscalation" in results["k8s-security"].reason
    assert results["k8s-hpa"].status == "PASS"
    assert results["k8s-hpa"].reason.endswith(
        "(autoscaling.enabled: off by default; on in ci/production-values.yaml)"
    )
    assert results["k8s-pdb"].status == "FAIL"
