"""The update story: `copier update` brings template changes in and loses nothing the user wrote.

Every test builds a throwaway git repository from this repo's copier.yml, template/ and
hooks/ (so nothing depends on this repo's own tags), tags it v1.0.0, generates a project
from it with the Copier CLI, commits that, edits it the way a service team would, then
releases a v2.0.0 of the template and updates.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from .repos import (
    COPIER,
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
from .support import REPO, project_env

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


# --- migrations ------------------------------------------------------------------

JINJA_BLOCK = re.compile(r"{{.*?}}|{%.*?%}", re.DOTALL)


def rename_answer_in_template(template: TemplateRepo, old: str, new: str) -> int:
    """Rename the question `old` to `new` in copier.yml and every Jinja expression."""
    word = re.compile(rf"\b{re.escape(old)}\b")
    config = template.copier_yml()
    assert old in config, f"copier.yml has no question {old!r}"
    renamed = {
        (new if key == old else key): (
            yaml.safe_load(word.sub(new, yaml.safe_dump(value))) if key == old else value
        )
        for key, value in config.items()
    }
    template.write("copier.yml", yaml.safe_dump(renamed, sort_keys=False, allow_unicode=True))
    uses = 0
    for path in (template.path / "template").rglob("*.jinja"):
        text = path.read_text(encoding="utf-8")
        new_text = JINJA_BLOCK.sub(lambda m: word.sub(new, m.group(0)), text)
        if new_text != text:
            uses += 1
            path.write_text(new_text, encoding="utf-8")
    return uses


def add_migration(template: TemplateRepo, migration: dict[str, object]) -> None:
    config = template.copier_yml()
    existing = config.get("_migrations") or []
    assert isinstance(existing, list)
    config["_migrations"] = [*existing, migration]
    template.write("copier.yml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


@pytest.mark.parametrize("with_migration", [True, False], ids=["migrated", "no-migration"])
def test_a_renamed_answer_keeps_the_users_value_through_a_migration(
    tmp_path: Path, with_migration: bool
) -> None:
    env = isolated_git_env(tmp_path)
    template = TemplateRepo.create(tmp_path / "template", env)
    email = "billing-team@corp.example"
    copier(
        "copy", "--trust", "--defaults", "--data", f"author_email={email}",
        str(template.path), "svc", cwd=tmp_path, env=env,
    )  # fmt: skip
    project = Repo(tmp_path / "svc", env)
    project.commit("generated")
    assert email in project.read("pyproject.toml")

    # v2 renames the answer `author_email` to `owner_email`.
    assert rename_answer_in_template(template, "author_email", "owner_email") >= 1
    if with_migration:
        add_migration(
            template,
            {
                "version": "v2.0.0",
                "when": "{{ _stage == 'before' }}",
                "command": [
                    "{{ _copier_python }}",
                    "{{ _copier_conf.src_path }}/hooks/migrate.py",
                    "rename-answer",
                    "author_email",
                    "owner_email",
                ],
            },
        )
    template.release("v2.0.0")

    copier("update", "--trust", "--defaults", cwd=project.path, env=env)
    updated = answers(project)
    assert updated["_commit"] == "v2.0.0"
    assert "author_email" not in updated
    assert not unmerged_paths(project)
    if with_migration:
        # The user's answer carried over, and the files rendered from it kept it.
        assert updated["owner_email"] == email
        assert email in project.read("pyproject.toml")
    else:
        # Why the migration exists: without it the answer falls back to the default.
        assert updated["owner_email"] == "platform@example.com"
        assert email not in project.read("pyproject.toml")


@pytest.mark.parametrize("with_migration", [True, False], ids=["migrated", "no-migration"])
def test_a_renamed_file_keeps_the_users_edits_through_a_migration(
    tmp_path: Path, with_migration: bool
) -> None:
    env = isolated_git_env(tmp_path)
    template = TemplateRepo.create(tmp_path / "template", env)
    copier("copy", "--trust", "--defaults", str(template.path), "svc", cwd=tmp_path, env=env)
    project = Repo(tmp_path / "svc", env)
    generated = project.commit("generated")
    project.replace_line(".env.example", "LOG_LEVEL=INFO", "LOG_LEVEL=DEBUG")
    project.replace_line(".env.example", "PORT=8000", "PORT=9000")
    project.append(".env.example", "# Billing: feature flags.\nFEATURES=beta-dashboard\n")
    edited = project.commit("the team's edits")
    user_lines = added_lines(project, generated, edited)[".env.example"]

    # v2 renames .env.example to .env.sample, changes its first line, and the PORT line
    # the user changed too.
    template.git("mv", "template/.env.example.jinja", "template/.env.sample.jinja")
    template.replace_line("template/.env.sample.jinja", "PORT={{ port }}", "PORT={{ port }}  # v2")
    v2_line = "# Template v2: this file was .env.example."
    template.write(
        "template/.env.sample.jinja", v2_line + "\n" + template.read("template/.env.sample.jinja")
    )
    if with_migration:
        add_migration(
            template,
            {
                "version": "v2.0.0",
                "command": [
                    "{{ _copier_python }}",
                    "{{ _copier_conf.src_path }}/hooks/migrate.py",
                    "rename-file",
                    ".env.example",
                    ".env.sample",
                ],
            },
        )
    template.release("v2.0.0")

    copier("update", "--trust", "--defaults", cwd=project.path, env=env)
    assert answers(project)["_commit"] == "v2.0.0"
    assert not (project.path / ".env.example").exists()
    sample = project.read(".env.sample").splitlines()
    assert v2_line in sample
    lost = lost_lines(project, {".env.sample": user_lines})
    if with_migration:
        assert not lost, f"user lines lost: {lost}"
        assert "LOG_LEVEL=INFO" not in sample  # the user's change of that line, not v1's
        # The same-line change is a marked conflict, listed by git as unmerged.
        assert conflict_blocks(project.read(".env.sample")) == [
            (["PORT=9000"], ["PORT=8000  # v2"])
        ]
        assert unmerged_paths(project) == [".env.sample"]
    else:
        assert not unmerged_paths(project)
        # Why the migration exists: without it the edits vanish with the old file.
        assert lost == {".env.sample": user_lines}


def test_migrate_rename_answer_is_idempotent(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("migrate", REPO / "hooks" / "migrate.py")
    assert spec
    assert spec.loader
    migrate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migrate)
    rename_answer = migrate.rename_answer
    answers_file = tmp_path / ".copier-answers.yml"
    answers_file.write_text("# header\n_commit: v1.0.0\nport: 9000\nportal: x\n", "utf-8")
    rename_answer(answers_file, "port", "http_port")
    assert (
        answers_file.read_text("utf-8") == "# header\n_commit: v1.0.0\nhttp_port: 9000\nportal: x\n"
    )
    rename_answer(answers_file, "port", "http_port")  # already migrated: nothing happens
    assert yaml.safe_load(answers_file.read_text("utf-8"))["http_port"] == 9000


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


# --- changing an answer on update ------------------------------------------------


def tree(root: Path) -> dict[str, str]:
    """Text of every file under `root` except git's and the answers file."""
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(root).parts
        and path.name != ".copier-answers.yml"
    }  # fmt: skip


@pytest.mark.parametrize("updater", ["copier", "svcgen"])
def test_adding_redis_on_update_brings_in_its_wiring_and_keeps_user_edits(
    tmp_path: Path, updater: str
) -> None:
    env = isolated_git_env(tmp_path)
    template = TemplateRepo.create(tmp_path / "template", env)
    src = str(template.path)
    copier("copy", "--trust", "--defaults", src, "svc", cwd=tmp_path, env=env)
    redis = '--data=services=["redis"]'
    copier("copy", "--trust", "--defaults", redis, src, "reference", cwd=tmp_path, env=env)
    project = Repo(tmp_path / "svc", env)
    generated = project.commit("generated without backing services")
    assert "cache.py" not in project.git("ls-files")

    package, slug = str(answers(project)["package_name"]), str(answers(project)["project_slug"])
    project.append(f"src/{package}/core/settings.py", USER_CODE)
    project.append("README.md", "\n## Runbook\n\nPage #billing-oncall.\n")
    own = {"docs/runbook.md": "# Runbook\n\nRestart with `kubectl rollout restart`.\n"}
    for rel, text in own.items():
        project.write(rel, text)
    edited = project.commit("the team's edits")
    user_lines = added_lines(project, generated, edited)

    if updater == "copier":
        copier("update", "--trust", "--defaults", redis, cwd=project.path, env=env)
    else:
        report = svcgen_update(project, data={"services": "redis"}).stdout
        assert re.search(r"^\s*services: .+ → redis$", report, re.M), report

    assert answers(project)["services"] == ["redis"]
    assert answers(project)["_commit"] == "v1.0.0"
    assert not unmerged_paths(project)
    assert not lost_lines(project, user_lines)
    # The project now is what a fresh generation with Redis gives, plus the team's edits.
    updated, reference = tree(project.path), tree(tmp_path / "reference")
    assert set(updated) == set(reference) | set(own)
    for rel, text in reference.items():
        if rel in user_lines:
            assert not lost_lines(project, {rel: text.splitlines()}), rel
        else:
            assert updated[rel] == text, f"{rel} differs from a fresh generation with Redis"

    # The pieces the Redis option stands for, by name.
    assert f"src/{package}/core/cache.py" in updated
    assert "tests/test_cache.py" in updated
    assert re.search(r"^REDIS_URL=", updated[".env.example"], re.M)
    assert re.search(r"^\s+redis_url: ", updated[f"src/{package}/core/settings.py"], re.M)
    compose = yaml.safe_load(updated["docker-compose.yml"])
    assert "redis" in compose["services"]
    assert "REDIS_URL" in updated[f"charts/{slug}/values.yaml"]
    ci = yaml.safe_load(updated[".github/workflows/ci.yml"])
    containers = [job.get("services", {}) for job in ci["jobs"].values()]
    assert any("redis" in services for services in containers), "no Redis service container"
    assert '"redis' in updated["pyproject.toml"]


# --- files the user owns -----------------------------------------------------------


@pytest.mark.parametrize("skipped", [True, False], ids=["skip-if-exists", "not-listed"])
def test_the_users_env_file_survives_a_template_that_starts_shipping_one(
    tmp_path: Path, skipped: bool
) -> None:
    env = isolated_git_env(tmp_path)
    template = TemplateRepo.create(tmp_path / "template", env)
    skip_if_exists = template.copier_yml()["_skip_if_exists"]
    assert isinstance(skip_if_exists, list)
    assert ".env" in skip_if_exists
    copier("copy", "--trust", "--defaults", str(template.path), "svc", cwd=tmp_path, env=env)
    project = Repo(tmp_path / "svc", env)
    project.commit("generated")
    secrets = "DATABASE_URL=postgresql://billing:s3cret@db/billing\n"
    project.write(".env", secrets)  # git-ignored: never committed, only on this machine
    assert ".env" not in project.git("status", "--porcelain")

    # v2 ships a starter .env; a template that forgot `_skip_if_exists` would clobber it.
    template.write("template/.env.jinja", "PORT={{ port }}\n")
    if not skipped:
        config = template.copier_yml()
        config["_skip_if_exists"] = []
        template.write("copier.yml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    template.release("v2.0.0")

    copier("update", "--trust", "--defaults", cwd=project.path, env=env)
    assert answers(project)["_commit"] == "v2.0.0"
    if skipped:
        assert project.read(".env") == secrets
    else:
        assert project.read(".env") == "PORT=8000\n"  # the user's secrets are gone


# --- what an interactive update asks ---------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\r")


def answer_everything_with_enter(
    args: list[str], cwd: Path, env: Mapping[str, str], prompts: list[str]
) -> str:
    """Run Copier in a terminal, press Enter at each of `prompts`; the transcript, plain."""
    import pexpect

    child = pexpect.spawn(
        COPIER[0], [*COPIER[1:], *args], cwd=str(cwd), env=dict(env),
        encoding="utf-8", dimensions=(60, 400), timeout=120,
    )  # fmt: skip
    transcript: list[str] = []
    # A prompt is redrawn as it is answered, so Enter may arrive early for the next
    # one: harmless, every answer here is the default.
    while child.expect([pexpect.EOF, *map(re.escape, prompts)]) != 0:
        transcript.append(f"{child.before}{child.after}")
        child.send("\r")
    transcript.append(str(child.before))
    child.close()
    text = ANSI.sub("", "".join(transcript))
    assert child.exitstatus == 0, text[-3000:]
    return text


def test_an_interactive_update_does_not_ask_the_derived_names_again(tmp_path: Path) -> None:
    env = isolated_git_env(tmp_path)
    template = TemplateRepo.create(tmp_path / "template", env)
    helps = {
        name: str(question["help"])
        for name, question in template.copier_yml().items()
        if not name.startswith("_") and isinstance(question, dict)
    }
    derived = {"project_slug", "package_name"}

    def asked(transcript: str) -> set[str]:
        return {name for name, help_text in helps.items() if help_text in transcript}

    prompts = list(helps.values())
    first = answer_everything_with_enter(
        ["copy", "--trust", str(template.path), "svc"], tmp_path, env, prompts
    )
    assert derived <= asked(first), "the first copy asks for the slug and package name"
    project = Repo(tmp_path / "svc", env)
    project.commit("generated")

    again = answer_everything_with_enter(["update", "--trust"], project.path, env, prompts)
    assert "project_name" in asked(again)
    assert asked(again) == asked(first) - derived  # every other question is asked again
    assert answers(project)["project_slug"] == "my-service"
    assert answers(project)["package_name"] == "my_service"
