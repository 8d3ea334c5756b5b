"""`svcgen status` on a folder of three generated repos: current, behind, conflicting.

A throwaway template (this repo's copier.yml, template/, hooks/) releases v1.0.0; three
repos are generated from it and committed; v2.0.0 rewrites a README heading. `current` is
updated to v2.0.0; `behind` is not (and has an uncommitted file); `conflicting` rewrote that
README heading itself. The dry run must leave every repo exactly as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from svcgen.cli import app
from typer.testing import CliRunner, Result

from .repos import Repo, TemplateRepo, copier, heading_in_both, isolated_git_env

# Both tests share one fleet (generated once): keep them on one xdist worker.
pytestmark = pytest.mark.xdist_group("cli-status")


@dataclass
class Fleet:
    root: Path
    repos: dict[str, Repo]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("status")
    env = isolated_git_env(tmp)
    template = TemplateRepo.create(tmp / "svcgen", env)
    root = tmp / "fleet"
    root.mkdir()
    repos = {}
    for name in ("current", "behind", "conflicting"):
        copier("copy", "--trust", "--defaults", str(template.path), name, cwd=root, env=env)
        repos[name] = Repo(root / name, env)
        repos[name].commit("generated")
    heading = heading_in_both(
        template.read("template/README.md.jinja"), repos["conflicting"].read("README.md")
    )
    repos["conflicting"].replace_line("README.md", heading, heading + " (team edition)")
    repos["conflicting"].commit("the team's heading")
    template.replace_line("template/README.md.jinja", heading, heading + " (template v2)")
    template.release("v2.0.0")
    copier("update", "--trust", "--defaults", cwd=repos["current"].path, env=env)
    repos["current"].commit("template v2.0.0")
    repos["behind"].write("notes.txt", "work in progress\n")  # uncommitted
    (root / "not-a-repo").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield Fleet(root, repos)


def svcgen(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def snapshot(repo: Repo) -> tuple[str, str, str]:
    return (
        repo.git("rev-parse", "HEAD"),
        repo.git("status", "--porcelain", "--untracked-files=all"),
        repo.read("README.md"),
    )


def test_a_folder_of_repos_current_behind_and_conflicting(fleet: Fleet) -> None:
    before = {name: snapshot(repo) for name, repo in fleet.repos.items()}
    result = svcgen("status", str(fleet.root), "--json")
    assert result.exit_code == 1, result.output  # some behind
    report = json.loads(result.stdout)
    assert report["current"] is False
    rows = {Path(r["path"]).name: r for r in report["repos"]}
    assert set(rows) == {"current", "behind", "conflicting"}  # not-a-repo is not listed
    assert rows["current"] | {"path": ""} == {
        "path": "", "version": "v2.0.0", "newest": "v2.0.0", "clean": True,
        "state": "current", "conflicts": [], "error": "",
    }  # fmt: skip
    assert (rows["behind"]["version"], rows["behind"]["newest"]) == ("v1.0.0", "v2.0.0")
    assert (rows["behind"]["state"], rows["behind"]["clean"]) == ("behind", False)
    assert rows["behind"]["conflicts"] == []
    assert rows["conflicting"]["state"] == "conflicts"
    assert rows["conflicting"]["clean"] is True
    assert rows["conflicting"]["conflicts"] == ["README.md"]
    # The dry run happened elsewhere: every repo is exactly as it was.
    assert {name: snapshot(repo) for name, repo in fleet.repos.items()} == before

    table = svcgen("status", str(fleet.root))
    assert table.exit_code == 1
    lines = {line.split()[1].rsplit("/", 1)[-1]: line for line in table.stdout.splitlines()
             if "/fleet/" in line}  # fmt: skip
    assert "current" in lines["current"]
    assert "changes" in lines["behind"]
    assert "behind" in lines["behind"]
    assert "conflicts: README.md" in lines["conflicting"]
    assert "1 current, 2 behind or unchecked" in table.stdout


def test_exit_codes_all_current_and_bad_input(fleet: Fleet, tmp_path: Path) -> None:
    only_current = svcgen("status", str(fleet.repos["current"].path))
    assert only_current.exit_code == 0, only_current.output
    assert "1 current, 0 behind" in only_current.stdout
    empty = svcgen("status", str(tmp_path))
    assert empty.exit_code == 2
    assert "no generated repo" in empty.output
    missing = svcgen("status", str(tmp_path / "nope"))
    assert missing.exit_code == 2
    assert "is not a folder" in missing.output
