"""The generated CI's lint, test and chart jobs, run here: their `run:` steps, read from the
generated ci.yml, are executed in the generated project with the job's environment pointed at this
machine's services (tests/ci_support.py), for every combination of answers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from .ci_support import load_yaml, local_test_job_env, run_steps, tool, workflow_env
from .conftest import ProjectFactory
from .support import LOCAL_SERVICES, TOOLS_BIN, Project, combo_id, matrix

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("answers", matrix(), ids=combo_id)
def test_lint_and_test_jobs_commands_pass_here(
    project: ProjectFactory, answers: dict[str, Any]
) -> None:
    generated = project(answers)
    ci = load_yaml(generated.path / ".github" / "workflows" / "ci.yml")
    prefix = f"svcgen_ci_{uuid.uuid4().hex[:8]}"

    def commands(job: str) -> str:
        return "\n".join(step.get("run", "") for step in ci["jobs"][job]["steps"])

    for needed in ("uv sync --locked", "ruff check", "ruff format --check", "mypy"):
        assert needed in commands("lint"), f"lint job lost `{needed}`"
    for needed in ("uv sync --locked", "pytest", "--cov"):
        assert needed in commands("test"), f"test job lost `{needed}`"

    assert "env" not in ci["jobs"]["lint"]
    assert "services" not in ci["jobs"]["lint"]
    run_steps(generated, ci, "lint", workflow_env(ci))

    coverage = generated.path / "coverage.xml"
    coverage.unlink(missing_ok=True)
    test_env = local_test_job_env(ci, answers["services"], prefix)
    outputs = run_steps(generated, ci, "test", test_env)
    pytest_output = outputs[-1]
    assert re.search(r"\d+ passed", pytest_output), pytest_output[-3000:]
    assert " skipped" not in pytest_output, "generated tests must not skip with CI=true"
    # What the upload step publishes exists (it is set to fail on a missing file).
    upload = next(s for s in ci["jobs"]["test"]["steps"] if "upload-artifact" in s.get("uses", ""))
    for name in str(upload["with"]["path"]).split():
        assert (generated.path / name).is_file(), f"{name} not produced for the upload step"

    # The pre-commit hooks that run the project's own ruff: their commands work on its files.
    local_hooks = [
        hook
        for repo in load_yaml(generated.path / ".pre-commit-config.yaml")["repos"]
        if repo["repo"] == "local"
        for hook in repo["hooks"]
    ]
    assert local_hooks
    python_files = sorted(
        str(p.relative_to(generated.path)) for p in generated.path.glob("[st]*/**/*.py")
    )
    assert python_files
    for hook in local_hooks:
        generated.run("bash", "-c", f'{hook["entry"]} "$@"', "hook", *python_files)


UVX_SHIM = """\
#!/bin/sh
# uvx --from NAME==VERSION COMMAND ARGS...: the same pinned tool, from .tools/bin (no download).
[ "$1" = --from ] || { echo "uvx shim: only --from NAME==VERSION COMMAND" >&2; exit 2; }
shift 2
command="$1"
shift
exec "$TOOLS_BIN/$command" "$@"
"""


@pytest.mark.parametrize("answers", matrix(), ids=combo_id)
def test_chart_job_commands_pass_here(
    project: ProjectFactory, answers: dict[str, Any], tmp_path: Path
) -> None:
    """The chart job's own commands (helm lint, helm template, kubernetes-validate), run here with
    the same pinned versions from .tools/bin, on a checkout of the generated chart."""
    generated = project(answers, install=False)
    ci = load_yaml(generated.path / ".github" / "workflows" / "ci.yml")
    job = ci["jobs"]["chart"]
    text = "\n".join(step.get("run", "") for step in job["steps"])
    assert "helm lint --strict" in text
    assert "kubernetes-validate --strict" in text

    setup_helm = next(s for s in job["steps"] if "azure/setup-helm@" in s.get("uses", ""))
    helm_version = subprocess.run(
        [tool("helm"), "version", "--short"], capture_output=True, text=True, check=True
    ).stdout
    assert helm_version.startswith(setup_helm["with"]["version"] + "+"), helm_version
    for name, version in re.findall(r"uvx --from ([\w-]+)==([\d.]+) ", text):
        installed = subprocess.run(
            [tool(name), "--version"], capture_output=True, text=True, check=True
        ).stdout
        assert version in installed, f"{name}: workflow pins {version}, .tools has {installed}"

    checkout = tmp_path / "checkout"
    shutil.copytree(generated.path / "charts", checkout / "charts")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "uvx").write_text(UVX_SHIM)
    (shim / "uvx").chmod(0o755)
    env = {
        **workflow_env(ci),
        **{k: str(v) for k, v in job.get("env", {}).items()},
        "TOOLS_BIN": str(TOOLS_BIN),
        "PATH": os.pathsep.join([str(shim), str(TOOLS_BIN), os.environ["PATH"]]),
    }
    in_checkout = Project(checkout, generated.answers, generated.env)
    github_only = {"actions/checkout", "azure/setup-helm", "astral-sh/setup-uv"}
    outputs = run_steps(in_checkout, ci, "chart", env, github_only)
    versions = str(job["env"]["KUBERNETES_VERSIONS"]).split()
    for version in versions:
        assert f"valid against Kubernetes {version}" in outputs[-1], outputs[-1]


def test_local_env_mapping_rejects_a_mismatched_service_url() -> None:
    """The mapping onto this machine refuses URLs that would not reach the job's own containers."""
    container = {
        "image": "postgres:17.5-alpine",
        "env": {"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "app", "POSTGRES_DB": "app_test"},
        "ports": ["5432:5432"],
    }

    def ci_with(url: str) -> dict[str, Any]:
        env = {"CI": "true", "TEST_RUN_PREFIX": "ci_${{ github.run_id }}", "DATABASE_URL": url}
        return {"jobs": {"test": {"services": {"postgres": container}, "env": env}}}

    good = local_test_job_env(
        ci_with("postgresql://app:app@localhost:5432/app_test"), ["postgres"], "p"
    )
    assert good["DATABASE_URL"] == LOCAL_SERVICES["postgres"]["DATABASE_URL"]
    assert good["TEST_RUN_PREFIX"] == "p"
    for wrong in (
        "postgresql://app:app@localhost:5433/app_test",  # port not published
        "postgresql://app:app@postgres:5432/app_test",  # container host: the job runs on the VM
        "postgresql://app:other@localhost:5432/app_test",  # not the container's password
        "postgresql://app:app@localhost:5432/other",  # not the container's database
    ):
        with pytest.raises(AssertionError):
            local_test_job_env(ci_with(wrong), ["postgres"], "p")
    with pytest.raises(AssertionError):  # a service chosen but no URL for it
        local_test_job_env(ci_with("postgresql://app:app@localhost:5432/app_test"), [], "p")
