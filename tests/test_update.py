"""The update story: `copier update` brings template changes in and loses nothing the user wrote.

Every test builds a throwaway git repository from this repo's copier.yml, template/ and
hooks/ (so nothing depends on this repo's own tags), tags it v1.0.0, generates a project
from it with the Copier CLI, commits that, edits it the way a service team would, then
releases a v2.0.0 of the template and updates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from .repos import (
    Repo,
    TemplateRepo,
    added_lines,
    answers,
    conflict_blocks,
    copier,
    heading_in_both,
    isolated_git_env,
    keep_our_side,
    lost_lines,
    run,
    svcgen_update,
    unmerged_paths,
)
from .support import project_env

# --- the scenario: v1, a generated project, user edits, v2 --------------------


@dataclass
class Scenario:
    template: TemplateRepo
    project: Repo
    generated: str  # the commit of the untouched v1 project
    edited: str  # the commit with the user's edits
    own_files: dict[str, str]  # files only the user wrote: path -> content
    conflict_file: str  # both the user and v2 changed one line of it
    conflict_user_line: str
    conflict_template_line: str
    arrivals: dict[str, str] = field(default_factory=dict)  # path -> line v2 brings in

    @property
    def user_lines(self) -> dict[str, list[str]]:
        return added_lines(self.project, self.generated, self.edited)


def values_file(project: Repo, slug: str) -> str:
    chart_values = f"charts/{slug}/values.yaml"
    return chart_values if (project.path / chart_values).is_file() else ".env.example"


USER_CODE = '''

def is_production(settings: Settings) -> bool:
    """Owned by the service team: production gets stricter behaviour."""
    return settings.environment == "production"
'''

USER_TEST = '''"""The service team's own test: the template never knew about it."""

from {package}.core.settings import Settings, is_production


def test_is_production() -> None:
    assert is_production(Settings(_env_file=None, environment="production"))
    assert not is_production(Settings(_env_file=None))
'''

TEMPLATE_V2_CODE = '''

def template_generation() -> int:
    """Added in template v2: which major version of the template wrote this service."""
    return 2
'''

TEMPLATE_V2_MAKE = """
outdated: ## List dependencies with newer releases (template v2)
\t$(UV) pip list --outdated
"""


def build_scenario(tmp: Path, data: Mapping[str, str] | None = None) -> Scenario:
    env = isolated_git_env(tmp)
    template = TemplateRepo.create(tmp / "template", env)
    data_args = [arg for k, v in (data or {}).items() for arg in ("--data", f"{k}={v}")]
    copier("copy", "--trust", "--defaults", *data_args, str(template.path), "svc", cwd=tmp, env=env)
    project = Repo(tmp / "svc", env)
    assert (project.path / ".git").is_dir(), "the post-copy task should have run git init"
    generated = project.commit("generated from svcgen v1.0.0")
    given = answers(project)
    package, slug = str(given["package_name"]), str(given["project_slug"])
    assert given["_commit"] == "v1.0.0"
    assert Path(str(given["_src_path"])) == template.path

    # --- the user's edits: application code, config (chart values), README, own files
    settings = f"src/{package}/core/settings.py"
    project.append(settings, USER_CODE)
    config = values_file(project, slug)
    project.append(config, "# Owned by the billing team: see the runbook before changing.\n")
    if config == ".env.example":
        project.replace_line(config, "LOG_LEVEL=INFO", "LOG_LEVEL=DEBUG")
    else:
        replicas = re.search(r"^replicaCount: .*$", project.read(config), re.M)
        assert replicas, f"{config} has no top-level replicaCount"
        project.replace_line(config, replicas.group(0), "replicaCount: 5  # billing peak load")
    readme_heading = heading_in_both(
        template.read(template.source("README.md")), project.read("README.md")
    )
    user_heading = readme_heading + " (billing team edition)"
    project.replace_line("README.md", readme_heading, user_heading)
    project.append("README.md", "\n## Runbook\n\nPage #billing-oncall; dashboards in Grafana.\n")
    own_files = {
        "tests/test_user_feature.py": USER_TEST.format(package=package),
        "docs/decisions/0001-billing.md": "# 1. Billing owns this service\n\nAccepted.\n",
    }
    for rel, text in own_files.items():
        project.write(rel, text)
    edited = project.commit("the team's edits")

    # --- template v2: changes in files the user never touched, in a file the user
    # touched (other lines), and in the very line of README the user rewrote.
    template.append(template.source("src/{{package_name}}/core/logging.py"), TEMPLATE_V2_CODE)
    template.append(template.source("Makefile"), TEMPLATE_V2_MAKE)
    settings_src = template.source("src/{{package_name}}/core/settings.py")
    template.write(
        settings_src, "# Template v2: read once per process.\n" + template.read(settings_src)
    )
    template_heading = readme_heading + " (template v2)"
    template.replace_line(template.source("README.md"), readme_heading, template_heading)
    template.release("v2.0.0")

    return Scenario(
        template=template,
        project=project,
        generated=generated,
        edited=edited,
        own_files=own_files,
        conflict_file="README.md",
        conflict_user_line=user_heading,
        conflict_template_line=template_heading,
        arrivals={
            f"src/{package}/core/logging.py": "def template_generation() -> int:",
            "Makefile": "outdated: ## List dependencies with newer releases (template v2)",
            settings: "# Template v2: read once per process.",
        },
    )


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return build_scenario(tmp_path)


def rejected_lines(repo: Repo, rel: str) -> list[str]:
    """The lines a `.rej` file of `rel` would add (the user's side of a rejected hunk)."""
    rej = repo.path / f"{rel}.rej"
    text = rej.read_text(encoding="utf-8") if rej.exists() else ""
    return [line[1:] for line in text.splitlines() if line.startswith("+") and line[:4] != "+++ "]


def check_update(s: Scenario, conflict: str = "inline") -> dict[str, int]:
    """Everything the update story promises, after the update ran; returns counts."""
    project = s.project
    assert answers(project)["_commit"] == "v2.0.0"

    # The template change arrives: in untouched files and around the user's lines.
    for rel, line in s.arrivals.items():
        assert line in project.read(rel).splitlines(), f"v2's {line!r} did not reach {rel}"

    # The user's own files are untouched.
    for rel, text in s.own_files.items():
        assert project.read(rel) == text, f"{rel} changed"

    wanted = s.user_lines
    assert sum(map(len, wanted.values())) >= 10, "the scenario should edit a fair amount"
    tracked = project.git("ls-files").splitlines()
    if conflict == "inline":
        # Every line the user wrote is still in the tree.
        assert not lost_lines(project, wanted), f"user lines lost: {lost_lines(project, wanted)}"
        # The same-line conflict: marked inline with both sides, and unmerged for git.
        blocks = conflict_blocks(project.read(s.conflict_file))
        assert len(blocks) == 1, blocks
        ours, theirs = blocks[0]
        assert s.conflict_user_line in ours
        assert s.conflict_template_line in theirs
        assert unmerged_paths(project) == [s.conflict_file]
        assert not list(project.path.rglob("*.rej"))
    else:
        # The conflicting hunk is left in `<file>.rej`, which git shows as untracked.
        rel = s.conflict_file
        assert s.conflict_user_line in rejected_lines(project, rel)
        assert s.conflict_template_line in project.read(rel).splitlines()
        kept = lost_lines(project, wanted)
        if rel in kept:
            kept[rel] = [line for line in kept[rel] if line not in rejected_lines(project, rel)]
        assert not any(kept.values()), f"user lines lost: {kept}"
        status = project.git("status", "--porcelain", "--untracked-files=all").splitlines()
        assert f"?? {rel}.rej" in status
    # ... and no other file conflicts: everything else merged cleanly.
    for rel in tracked:
        if rel != s.conflict_file:
            assert not conflict_blocks(project.read(rel)), f"unexpected conflict in {rel}"
    return {"user_lines": sum(map(len, wanted.values())), "files": len(wanted)}


# --- tests -----------------------------------------------------------------------


def test_copier_update_brings_v2_and_keeps_every_user_line(scenario: Scenario) -> None:
    result = copier(
        "update", "--trust", "--defaults", cwd=scenario.project.path, env=scenario.project.env
    )
    assert "Updating to template version 2.0.0" in result.stderr
    check_update(scenario)
    # The generated pre-commit hook must look for these markers outside a `git merge` too:
    # `copier update` leaves no MERGE_HEAD, and without the flag the hook never checks.
    pre_commit = yaml.safe_load(scenario.project.read(".pre-commit-config.yaml"))
    hooks = {hook["id"]: hook for repo in pre_commit["repos"] for hook in repo["hooks"]}
    assert "--assume-in-merge" in hooks["check-merge-conflict"].get("args", [])


@pytest.mark.parametrize("conflict", ["inline", "rej"])
def test_svcgen_update_brings_v2_keeps_every_user_line_and_reports_the_conflict(
    scenario: Scenario, conflict: str
) -> None:
    result = svcgen_update(scenario.project, conflict=conflict)
    check_update(scenario, conflict)
    report = result.stdout
    assert "v1.0.0 → v2.0.0" in report
    kind = "conflict markers" if conflict == "inline" else ".rej files"
    assert f"1 file(s) with {kind}" in " ".join(report.split())
    reported = scenario.conflict_file + (".rej" if conflict == "rej" else "")
    assert reported in report.split()


@pytest.mark.e2e
def test_the_updated_project_passes_its_own_checks(scenario: Scenario) -> None:
    project = scenario.project
    copier("update", "--trust", "--defaults", cwd=project.path, env=project.env)
    check_update(scenario)
    resolved = keep_our_side(project.read(scenario.conflict_file))
    project.write(scenario.conflict_file, resolved)
    project.git("add", scenario.conflict_file)
    assert not unmerged_paths(project)

    env = {
        **project_env(str(answers(project)["python_version"])),
        "GIT_CONFIG_GLOBAL": project.env["GIT_CONFIG_GLOBAL"],
        "PYTEST_ADDOPTS": "-v -p no:cacheprovider",
    }
    for target in ("install", "lint", "test"):
        result = run("make", target, cwd=project.path, env=env)
    # Lint covered the merged code; the team's own test ran and passed.
    assert "test_user_feature.py::test_is_production PASSED" in result.stdout
    assert " failed" not in result.stdout.splitlines()[-1]
