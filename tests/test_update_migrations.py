"""Copier `_migrations` through an update: a renamed answer and a renamed file keep what the
user gave and wrote only with a migration (hooks/migrate.py), shown with and without one.

Each test builds a throwaway template repository (tests/repos.py), generates from its v1.0.0,
changes the template in a v2.0.0 and updates.
"""

from __future__ import annotations

import importlib.util
import re
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
    isolated_git_env,
    lost_lines,
    unmerged_paths,
)
from .support import REPO

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
