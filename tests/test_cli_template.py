"""The wizard reads copier.yml at the ref Copier will render: newest release tag, else HEAD."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from svcgen.cli import app
from svcgen.template import load_config
from typer.testing import CliRunner

from .repos import GIT_IDENTITY, git, tiny_template


def write_config(root: Path, default: str) -> None:
    (root / "copier.yml").write_text(
        f"_subdirectory: files\ncolour:\n  type: str\n  help: Colour\n  default: {default}\n",
        encoding="utf-8",
    )


@pytest.fixture
def template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """v1.0.0 says red, v2.0.0rc1 (a pre-release) says green, HEAD says blue, the tree says pink."""
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    root = tiny_template(tmp_path / "template", "", {"colour.txt.jinja": "{{ colour }}\n"})
    for default, tag in (("red", "v1.0.0"), ("green", "v2.0.0rc1"), ("blue", None)):
        write_config(root, default)
        git(root, "add", "-A")
        git(root, "commit", "--quiet", "-m", default)
        if tag:
            git(root, "tag", tag)
    write_config(root, "pink")  # uncommitted
    return root


def test_newest_release_tag_by_default(template: Path) -> None:
    assert load_config(str(template))["colour"]["default"] == "red"


def test_a_git_url_is_read_at_the_same_tag(template: Path) -> None:
    assert load_config(f"file://{template}")["colour"]["default"] == "red"
    assert load_config(f"file://{template}", "HEAD")["colour"]["default"] == "blue"


def test_vcs_ref_head_includes_uncommitted_changes(template: Path) -> None:
    assert load_config(str(template), "HEAD")["colour"]["default"] == "pink"
    assert load_config(str(template), "v2.0.0rc1")["colour"]["default"] == "green"


def test_a_folder_that_is_not_a_repo_is_read_as_it_is(tmp_path: Path) -> None:
    write_config(tmp_path, "plain")
    assert load_config(str(tmp_path))["colour"]["default"] == "plain"


def test_a_missing_template_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["options", "--template", str(tmp_path)])
    assert result.exit_code == 2
    assert "no copier.yml" in result.stderr


@pytest.mark.parametrize(
    ("ref", "colour", "commit"), [(None, "red", "v1.0.0"), ("HEAD", "pink", "v2.0.0rc1-")]
)
def test_the_wizard_and_copier_agree_on_the_ref(
    template: Path, tmp_path: Path, ref: str | None, colour: str, commit: str
) -> None:
    dest = tmp_path / "p"
    args = ["new", str(dest), "--template", str(template), "--yes"]
    result = CliRunner().invoke(app, [*args, "--vcs-ref", ref] if ref else args)
    assert result.exit_code == 0, result.output
    assert (dest / "colour.txt").read_text(encoding="utf-8") == f"{colour}\n"
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert answers["colour"] == colour
    assert answers["_commit"].startswith(commit), "Copier rendered the ref the wizard read"
