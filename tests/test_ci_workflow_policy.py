"""The policy of the generated GitHub Actions, for every combination of answers: pinned actions,
least privilege, no persisted credentials, only the chosen service containers, the image pushed
from main and tags only, the release deploying each environment in turn.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from .ci_support import CASES, PINNED, case_id, load_yaml, resolve_pins
from .conftest import ProjectFactory

pytestmark = pytest.mark.e2e

# The build workflows' policy is test_workflow_policy's; template-update's, test_template_update's.
BUILD_WORKFLOWS = ("ci.yml", "release.yml")


@pytest.mark.parametrize("answers", CASES, ids=case_id)
def test_workflow_policy(project: ProjectFactory, answers: dict[str, Any]) -> None:
    generated = project(answers, install=False)
    github = generated.path / ".github"
    services = set(answers["services"])
    ghcr = "container_registry" not in answers  # the default, ghcr.io/acme
    pushing_jobs = {"ci.yml": {"image"}, "release.yml": {"ci", "chart"}}

    for name in BUILD_WORKFLOWS:
        text = (github / "workflows" / name).read_text(encoding="utf-8")
        workflow = load_yaml(github / "workflows" / name)
        assert workflow["permissions"] == {"contents": "read"}, name
        assert workflow["defaults"] == {"run": {"shell": "bash"}}, name
        assert "cancel-in-progress" in workflow["concurrency"], name
        uses = [line for line in text.splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
        assert uses, name
        for line in uses:
            assert PINNED.match(line) or line.strip().endswith("./.github/workflows/ci.yml"), (
                f"{name}: not pinned to a commit SHA with its version: {line.strip()}"
            )
        for job_name, job in workflow["jobs"].items():
            granted = job.get("permissions", {})
            assert set(granted) <= {"contents", "packages"}, f"{name}:{job_name} {granted}"
            assert granted.get("contents", "read") == "read"
            assert ("packages" in granted) == (ghcr and job_name in pushing_jobs[name]), (
                f"{name}:{job_name}: packages: write only where a job pushes to ghcr.io"
            )
            for step in job.get("steps", []):
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, f"{name}:{job_name}"

    ci = load_yaml(github / "workflows" / "ci.yml")
    assert set(ci["on"]) == {"push", "pull_request", "workflow_call"}
    assert ci["concurrency"]["cancel-in-progress"] is True
    assert set(ci["jobs"]) == {"lint", "test", "chart", "scan", "image"}
    test_job = ci["jobs"]["test"]
    assert set(test_job.get("services", {})) == services, "only the chosen service containers"
    for name, container in test_job.get("services", {}).items():
        assert re.search(r":\d+\.\d+(\.\d+)?(-[a-z]+)?$", container["image"]), container["image"]
        assert "--health-cmd" in container["options"], name
    image = ci["jobs"]["image"]
    assert image["needs"] == ["lint", "test", "chart", "scan"]
    assert image["env"]["PUSH"] == (
        "${{ github.event_name == 'push' && (github.ref == 'refs/heads/main'"
        " || startsWith(github.ref, 'refs/tags/v')) }}"
    )
    build = next(
        s for s in image["steps"] if s.get("uses", "").startswith("docker/build-push-action@")
    )
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["push"] == "${{ env.PUSH == 'true' }}"
    assert build["with"]["sbom"] is True
    assert build["with"]["provenance"] == "mode=max"
    assert build["with"]["cache-from"] == "type=gha"
    trivy = next(s for s in ci["jobs"]["scan"]["steps"] if "trivy-action" in s.get("uses", ""))
    assert trivy["with"]["severity"] == "HIGH,CRITICAL"
    assert trivy["with"]["exit-code"] == "1"

    release = load_yaml(github / "workflows" / "release.yml")
    assert release["on"] == {"push": {"tags": ["v[0-9]+.[0-9]+.[0-9]+"]}}
    assert release["jobs"]["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert any("helm push" in s.get("run", "") for s in release["jobs"]["chart"]["steps"])
    # then each environment in turn, with its own values file and GitHub environment
    deploys = {name: job for name, job in release["jobs"].items() if name.startswith("deploy-")}
    assert list(deploys) == ["deploy-dev", "deploy-staging", "deploy-production"]
    assert [job["needs"] for job in deploys.values()] == [
        ["chart"],
        ["deploy-dev"],
        ["deploy-staging"],
    ]
    chart = generated.path / "charts" / generated.slug
    for (name, job), values in zip(
        deploys.items(), ("values-dev.yaml", "values-staging.yaml", "values-prod.yaml"), strict=True
    ):
        assert job["environment"] == name.removeprefix("deploy-")
        assert job["env"]["VALUES"] == values
        assert (chart / values).is_file(), values
        script = "\n".join(step.get("run", "") for step in job["steps"])
        assert "helm upgrade --install" in script, name
        assert "--atomic" in script, name

    dependabot = load_yaml(github / "dependabot.yml")
    ecosystems = {u["package-ecosystem"] for u in dependabot["updates"]}
    assert ecosystems == {"uv", "docker", "github-actions"}

    hooks = {
        hook["id"]
        for repo in load_yaml(generated.path / ".pre-commit-config.yaml")["repos"]
        for hook in repo["hooks"]
    }
    assert {"check-merge-conflict", "ruff-check", "ruff-format"} <= hooks


def test_pin_pattern_accepts_only_shas_with_their_version() -> None:
    sha = "11bd71901bbe5b1630ceea73d27597364c9af683"
    assert PINNED.match(f"      - uses: actions/checkout@{sha} # v4.2.2")
    assert resolve_pins(f"      - uses: actions/checkout@{sha} # v4.2.2") == (
        "      - uses: actions/checkout@v4"
    )
    for line in (
        "      - uses: actions/checkout@v4",
        "      - uses: actions/checkout@v4.2.2",
        f"      - uses: actions/checkout@{sha}",
        f"      - uses: actions/checkout@{sha[:7]} # v4.2.2",
    ):
        assert not PINNED.match(line), line
