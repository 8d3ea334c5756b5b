"""`svcgen update`: refusals, and the update itself on a tiny throwaway template.

The full update story (user edits across the real template, migrations, adding a
service) is tests/test_update.py's; here: the command's contract, fast.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from svcgen.cli import app
from typer.testing import CliRunner, Result

from .repos import GIT_IDENTITY, git, tiny_template

runner = CliRunner()
COPIER_YML = """\
_subdirectory: files
project_name: {type: str, help: Name, default: Tiny}
project_slug: {type: str, help: Slug, default: "{{ project_name | lower }}"}
package_name: {type: str, help: Package, default: "{{ project_slug }}"}
framework: {type: str, help: Framework, choices: [fastapi, flask], default: fastapi}
services: {type: str, help: Services, multiselect: true, choices: [postgres, redis], default: []}
"""


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)


def svcgen(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def make_template(root: Path) -> Path:
    tiny_template(
        root,
        COPIER_YML,
        {
            "README.md.jinja": "# {{ project_name }}\n\nline one\nline two\n",
            "services.txt.jinja": "{% for s in services %}{{ s }}\n{% endfor %}",
        },
    )
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "v1")
    git(root, "tag", "v1.0.0")
    return root


def release(template: Path, readme: str, tag: str) -> None:
    (template / "files" / "README.md.jinja").write_text(readme, encoding="utf-8")
    git(template, "commit", "--quiet", "-am", tag)
    git(template, "tag", tag)


@pytest.fixture
def generated(tmp_path: Path) -> tuple[Path, Path]:
    """(template, project): the project generated from v1.0.0 and committed."""
    template = make_template(tmp_path / "template")
    project = tmp_path / "project"
    result = svcgen("new", str(project), "--template", str(template), "--defaults")
    assert result.exit_code == 0, result.output
    git(project, "init", "--quiet", "--initial-branch=main")
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "generated")
    return template, project


def test_update_brings_the_new_version_in(generated: tuple[Path, Path]) -> None:
    template, project = generated
    release(template, "# {{ project_name }}\n\nline one\nline two\nline three\n", "v2.0.0")
    result = svcgen("update", str(project))
    assert result.exit_code == 0, result.output
    assert "v1.0.0 → v2.0.0" in result.stdout
    assert "No conflicts" in result.stdout
    assert "line three" in (project / "README.md").read_text(encoding="utf-8")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert answers["_commit"] == "v2.0.0"


def test_update_changes_an_answer_with_data(generated: tuple[Path, Path]) -> None:
    template, project = generated
    release(template, "# {{ project_name }}\n\nline one\nline two\n\n", "v2.0.0")
    result = svcgen("update", str(project), "--data", "services=redis,postgres")
    assert result.exit_code == 0, result.output
    assert "services: (none) → postgres, redis" in result.stdout
    assert (project / "services.txt").read_text(encoding="utf-8") == "postgres\nredis\n"


def test_update_with_a_bad_answer_exits_2(generated: tuple[Path, Path]) -> None:
    _, project = generated
    result = svcgen("update", str(project), "--data", "framework=django")
    assert result.exit_code == 2
    assert "'django' is not one of the choices" in result.stderr


@pytest.mark.parametrize("mode", ["inline", "rej"])
def test_conflicts_are_marked_and_listed(generated: tuple[Path, Path], mode: str) -> None:
    template, project = generated
    readme = project / "README.md"
    readme.write_text(
        readme.read_text(encoding="utf-8").replace("line two", "line two, ours"), encoding="utf-8"
    )
    git(project, "commit", "--quiet", "-am", "our edit")
    release(template, "# {{ project_name }}\n\nline one\nline two, theirs\n", "v2.0.0")
    result = svcgen("update", str(project), "--conflict", mode)
    assert result.exit_code == 0, result.output
    out = result.stdout
    if mode == "inline":
        assert "1 file(s) with conflict markers" in out
        assert "  README.md\n" in out
        text = readme.read_text(encoding="utf-8")
        assert "line two, ours" in text
        assert "line two, theirs" in text
        assert "<<<<<<<" in text
    else:
        assert "with .rej files" in out
        assert "  README.md.rej\n" in out
        assert (project / "README.md.rej").is_file()


def test_refuses_a_dirty_tree(generated: tuple[Path, Path]) -> None:
    template, project = generated
    release(template, "# new\n", "v2.0.0")
    (project / "README.md").write_text("uncommitted\n", encoding="utf-8")
    result = svcgen("update", str(project))
    assert result.exit_code == 1
    assert "uncommitted changes" in result.stderr
    assert "README.md" in result.stderr
    assert (project / "README.md").read_text(encoding="utf-8") == "uncommitted\n"


def test_refuses_an_untracked_file_too(generated: tuple[Path, Path]) -> None:
    _, project = generated
    (project / "notes.txt").write_text("new\n", encoding="utf-8")
    result = svcgen("update", str(project))
    assert result.exit_code == 1
    assert "notes.txt" in result.stderr


def test_refuses_a_repo_without_answers(tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet")
    result = svcgen("update", str(tmp_path))
    assert result.exit_code == 1
    assert "has no .copier-answers.yml" in result.stderr


def test_refuses_another_templates_answers(tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet")
    (tmp_path / ".copier-answers.yml").write_text(
        "_commit: v1\n_src_path: gh:someone/else\nproject_name: x\n", encoding="utf-8"
    )
    result = svcgen("update", str(tmp_path))
    assert result.exit_code == 1
    assert "written by another template" in result.stderr


def test_refuses_a_project_that_is_not_under_git(generated: tuple[Path, Path]) -> None:
    _, project = generated
    subprocess.run(["rm", "-rf", str(project / ".git")], check=True)
    result = svcgen("update", str(project))
    assert result.exit_code == 1
    assert "not a git repository" in result.stderr


def test_a_project_inside_a_monorepo(tmp_path: Path) -> None:
    template = make_template(tmp_path / "template")
    mono = tmp_path / "mono"
    project = mono / "services" / "tiny"
    assert svcgen("new", str(project), "--template", str(template), "--yes").exit_code == 0
    git(mono, "init", "--quiet", "--initial-branch=main")
    (project / "README.md").write_text("# Tiny\n\nline one\nline two, ours\n", encoding="utf-8")
    git(mono, "add", "-A")
    git(mono, "commit", "--quiet", "-m", "monorepo")
    release(template, "# {{ project_name }}\n\nline one\nline two, theirs\n", "v2.0.0")
    result = svcgen("update", str(project))
    assert result.exit_code == 0, result.output
    assert "  README.md\n" in result.stdout, "paths relative to the project, not the repo"
