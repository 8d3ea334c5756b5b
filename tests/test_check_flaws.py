"""`svcgen check` on a good repo that is not ours with one flaw at a time: each flaw gets its
one verdict (Dockerfiles: user, health check, pinned base, every Dockerfile of the repo; a Helm
chart inspected without rendering).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .check_support import ALL_CHECKS, GOOD_NODE, results_of, verdicts, write


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
