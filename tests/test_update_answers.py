"""What an update does with the answers and with the files the user owns: an answer changed on
update (Redis added) brings in its wiring, a `.env` the user keeps survives a template that starts
shipping one, and an interactive update does not ask the derived names again.

Each test builds a throwaway template repository (tests/repos.py) and generates from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from .repos import (
    COPIER,
    Repo,
    TemplateRepo,
    added_lines,
    answers,
    copier,
    isolated_git_env,
    lost_lines,
    svcgen_update,
    unmerged_paths,
)
from .test_update import USER_CODE

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
