"""A rename cannot silently lose work: `--data project_slug=...`/`package_name=...` on update.

Without the refusal both tools deleted charts/<old-slug>/ (the team's `replicaCount: 5`
with it), rendered a fresh chart and reported "No conflicts". Now `copier update` (the
template's `refuse-rename` migration) and `svcgen update` refuse before writing anything,
and the way the message gives to rename by hand keeps every edit through later updates.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from .repos import (
    COPIER,
    Repo,
    TemplateRepo,
    answers,
    copier,
    isolated_git_env,
    run,
    svcgen_update,
    unmerged_paths,
)

TEAM_REPLICAS = "replicaCount: 5  # billing peak load"
TEAM_CODE = "\n\ndef team_owned() -> str:\n    return 'kept'\n"
V2_LINE = "# Template v2: fleet update."


@dataclass
class Renaming:
    template: TemplateRepo
    project: Repo
    head: str
    slug: str
    package: str


@pytest.fixture(scope="module")
def renaming(tmp_path_factory: pytest.TempPathFactory) -> Renaming:
    """v1, a generated repo with the team's edits committed, then v2 released."""
    tmp = tmp_path_factory.mktemp("rename")
    env = isolated_git_env(tmp)
    template = TemplateRepo.create(tmp / "template", env)
    copier("copy", "--trust", "--defaults", str(template.path), "svc", cwd=tmp, env=env)
    project = Repo(tmp / "svc", env)
    project.commit("generated")
    given = answers(project)
    slug, package = str(given["project_slug"]), str(given["package_name"])
    values = f"charts/{slug}/values.yaml"
    replicas = next(
        line for line in project.read(values).splitlines() if line.startswith("replicaCount:")
    )
    project.replace_line(values, replicas, TEAM_REPLICAS)
    project.append(f"src/{package}/core/settings.py", TEAM_CODE)
    head = project.commit("the team's edits")
    template.append(template.source("Makefile"), f"\n{V2_LINE}\n")
    template.release("v2.0.0")
    return Renaming(template, project, head, slug, package)


def snapshot(repo: Repo) -> dict[str, bytes]:
    return {
        p.relative_to(repo.path).as_posix(): p.read_bytes()
        for p in sorted(repo.path.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo.path).parts
    }


RENAMES = [("project_slug", "other"), ("package_name", "other_pkg")]


@pytest.mark.parametrize("updater", ["copier", "svcgen"])
@pytest.mark.parametrize(("key", "value"), RENAMES, ids=[k for k, _ in RENAMES])
def test_a_rename_on_update_is_refused_and_changes_nothing(
    renaming: Renaming, updater: str, key: str, value: str
) -> None:
    project = renaming.project
    before = snapshot(project)
    if updater == "copier":
        args = ("update", "--trust", "--defaults", "--data", f"{key}={value}")
        result = run(*COPIER, *args, cwd=project.path, env=project.env, check=False)
    else:
        result = svcgen_update(project, data={key: value}, check=False)
    message = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, message
    assert f"{key} '{answers(project)[key]}'" in message, message
    assert "Nothing was changed" in message
    assert "git mv" in message  # how to rename safely
    assert ".copier-answers.yml" in message
    # Nothing changed: same commit, clean tree, same bytes, the team's value still there.
    assert project.git("rev-parse", "HEAD").strip() == renaming.head
    assert project.git("status", "--porcelain", "--untracked-files=all") == ""
    assert snapshot(project) == before
    assert TEAM_REPLICAS in project.read(f"charts/{renaming.slug}/values.yaml").splitlines()
    assert answers(project)["_commit"] == "v1.0.0"


def test_an_update_that_keeps_the_names_still_runs(renaming: Renaming, tmp_path: Path) -> None:
    """The refusal runs on every update: it must let an ordinary one (same names) through."""
    project = Repo(tmp_path / "svc", renaming.project.env)
    shutil.copytree(renaming.project.path, project.path, symlinks=True)
    slug = renaming.slug
    copier("update", "--trust", "--defaults", "--data", f"project_slug={slug}",
           cwd=project.path, env=project.env)  # fmt: skip
    assert answers(project)["_commit"] == "v2.0.0"
    assert V2_LINE in project.read("Makefile").splitlines()
    assert TEAM_REPLICAS in project.read(f"charts/{slug}/values.yaml").splitlines()


def test_the_rename_the_message_describes_keeps_every_edit_through_the_next_update(
    renaming: Renaming, tmp_path: Path
) -> None:
    project = Repo(tmp_path / "svc", renaming.project.env)
    shutil.copytree(renaming.project.path, project.path, symlinks=True)
    old, new = renaming.slug, "billing-api"
    # By hand, as the refusal says: git mv, replace the name, set the answer, commit.
    project.git("mv", f"charts/{old}", f"charts/{new}")
    for rel in project.git("ls-files").splitlines():
        path = project.path / rel
        text = path.read_text(encoding="utf-8")
        if old in text:
            path.write_text(text.replace(old, new), encoding="utf-8")
    assert answers(project)["project_slug"] == new
    project.commit("rename to billing-api")

    result = svcgen_update(project)
    assert "No conflicts" in result.stdout, result.stdout
    assert answers(project)["_commit"] == "v2.0.0"
    assert not unmerged_paths(project)
    assert not (project.path / "charts" / old).exists()
    assert TEAM_REPLICAS in project.read(f"charts/{new}/values.yaml").splitlines()
    settings = project.read(f"src/{renaming.package}/core/settings.py")
    assert TEAM_CODE.strip() in settings
    assert V2_LINE in project.read("Makefile").splitlines()
