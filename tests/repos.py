"""Throwaway git repositories for the tests: the one place their git helpers live.

- `GIT_IDENTITY` and `git()`: an identity and no machine config, for a quick repo in a test
  (set the variables with monkeypatch, or pass them to a subprocess);
  `isolated_git_env()`: the same as a whole environment, for `run()` and `Repo`.
- `Repo`: a working tree with edit helpers that fail loudly; `TemplateRepo`: a copy of this
  template under git, released with PEP 440 tags; `tiny_template()`: a few-line template.
- What the update tests read from them: answers, added and lost lines, conflict blocks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from svcgen.template import load_config

from .support import REPO, TEMPLATE_FOLDERS

COPIER = (sys.executable, "-m", "copier")
BEFORE, SEP, AFTER = "<<<<<<< before updating", "=======", ">>>>>>> after updating"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
ANSWERS_TEMPLATE = "{{_copier_conf.answers_file}}.jinja"


def git(cwd: Path, *args: str) -> str:
    """git in `cwd` with the test's environment (GIT_IDENTITY set by the caller)."""
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


def tiny_template(root: Path, copier_yml: str, files: Mapping[str, str]) -> Path:
    """A template in a fresh git repo, nothing committed: `copier_yml` (with
    `_subdirectory: files`) and `files` under files/, plus the answers file."""
    (root / "files").mkdir(parents=True)
    (root / "copier.yml").write_text(copier_yml, encoding="utf-8")
    for rel, text in {ANSWERS_TEMPLATE: "{{ _copier_answers | to_nice_yaml }}", **files}.items():
        (root / "files" / rel).write_text(text, encoding="utf-8")
    git(root, "init", "--quiet", "--initial-branch=main")
    return root


def isolated_git_env(home: Path) -> dict[str, str]:
    """An environment whose git has an identity and ignores the machine's git config."""
    config = home / "gitconfig"
    config.write_text(
        "[user]\n\tname = Update Test\n\temail = update-test@example.com\n"
        "[init]\n\tdefaultBranch = main\n"
        "[advice]\n\tdetachedHead = false\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_GLOBAL=str(config), GIT_CONFIG_NOSYSTEM="1")
    return env


def run(
    *args: str, cwd: Path, env: Mapping[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=600, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode} in {cwd}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


@dataclass
class Repo:
    """A git working tree with small editing helpers that fail loudly when text moved."""

    path: Path
    env: dict[str, str]

    def git(self, *args: str) -> str:
        return run("git", *args, cwd=self.path, env=self.env).stdout

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text(encoding="utf-8")

    def write(self, rel: str, text: str) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def append(self, rel: str, text: str) -> None:
        self.write(rel, self.read(rel) + text)

    def replace_line(self, rel: str, old: str, new: str) -> None:
        lines = self.read(rel).splitlines(keepends=True)
        hits = [i for i, line in enumerate(lines) if line.rstrip("\n") == old]
        assert len(hits) == 1, f"{rel}: expected one line {old!r}, found {len(hits)}"
        lines[hits[0]] = new + "\n"
        self.write(rel, "".join(lines))

    def commit(self, message: str) -> str:
        self.git("add", "--all")
        self.git("commit", "--quiet", "--no-verify", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


@dataclass
class TemplateRepo(Repo):
    """A throwaway copy of this template under git, released with PEP 440 tags."""

    @classmethod
    def create(cls, path: Path, env: dict[str, str]) -> TemplateRepo:
        path.mkdir(parents=True)
        shutil.copy2(REPO / "copier.yml", path / "copier.yml")
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")
        for folder in TEMPLATE_FOLDERS:
            shutil.copytree(REPO / folder, path / folder, ignore=ignore)
        repo = cls(path, env)
        repo.git("init", "--quiet")
        repo.release("v1.0.0")
        return repo

    def release(self, tag: str) -> None:
        self.commit(f"template {tag}")
        self.git("tag", tag)

    def source(self, generated: str) -> str:
        """The template file that renders `generated`, with or without `.jinja`."""
        for candidate in (f"template/{generated}.jinja", f"template/{generated}"):
            if (self.path / candidate).is_file():
                return candidate
        raise AssertionError(f"no template file renders {generated}")

    def copier_yml(self) -> dict[str, object]:
        """copier.yml with what it `!include`s inlined (as Copier reads it)."""
        return load_config(str(self.path), "HEAD")


def copier(*args: str, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return run(*COPIER, *args, cwd=cwd, env=env)


def answers(project: Repo) -> dict[str, object]:
    loaded = yaml.safe_load(project.read(".copier-answers.yml"))
    assert isinstance(loaded, dict)
    return loaded


def added_lines(repo: Repo, base: str, head: str) -> dict[str, list[str]]:
    """The lines `head` adds over `base`, file by file (what the user wrote)."""
    diff = repo.git("diff", "--unified=0", "--no-renames", base, head)
    lines: dict[str, list[str]] = {}
    current = ""
    for line in diff.splitlines():
        if line.startswith("+++ "):
            current = line[len("+++ b/") :]
        elif line.startswith("+") and current:
            lines.setdefault(current, []).append(line[1:])
    return lines


def lost_lines(repo: Repo, wanted: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Of `wanted`, the lines no longer in the working tree (order kept, duplicates counted)."""
    lost: dict[str, list[str]] = {}
    for rel, lines in wanted.items():
        target = repo.path / rel
        present = target.read_text(encoding="utf-8").splitlines() if target.exists() else []
        remaining = list(present)
        for line in lines:
            if line in remaining:
                remaining.remove(line)
            else:
                lost.setdefault(rel, []).append(line)
    return lost


def conflict_blocks(text: str) -> list[tuple[list[str], list[str]]]:
    """(ours, theirs) for every inline conflict in `text`; fails on malformed markers."""
    blocks = []
    lines = iter(text.splitlines())
    for line in lines:
        if line != BEFORE:
            assert not line.startswith(("<<<<<<<", ">>>>>>>")), f"stray marker {line!r}"
            continue
        ours, theirs = [], []
        for inner in lines:
            if inner == SEP:
                break
            ours.append(inner)
        for inner in lines:
            if inner == AFTER:
                break
            theirs.append(inner)
        else:
            raise AssertionError("conflict block without its closing marker")
        blocks.append((ours, theirs))
    return blocks


def unmerged_paths(repo: Repo) -> list[str]:
    return sorted(repo.git("diff", "--name-only", "--diff-filter=U").split())


def keep_our_side(text: str) -> str:
    """Resolve every inline conflict the way a team keeping its own line would."""
    out: list[str] = []
    side = None
    for line in text.splitlines(keepends=True):
        marker = line.rstrip("\n")
        if marker == BEFORE:
            side = "ours"
        elif marker == SEP and side == "ours":
            side = "theirs"
        elif marker == AFTER and side == "theirs":
            side = None
        elif side != "theirs":
            out.append(line)
    return "".join(out)


def heading_in_both(template_text: str, generated_text: str) -> str:
    """A '## ' heading written verbatim in the template and present in the generated file."""
    generated = set(generated_text.splitlines())
    for line in template_text.splitlines():
        if line.startswith("## ") and "{" not in line and line in generated:
            return line
    raise AssertionError("no plain '## ' heading shared by README.md.jinja and README.md")


def svcgen_update(
    project: Repo,
    *,
    data: Mapping[str, str] | None = None,
    conflict: str = "inline",
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """The installed `svcgen update --defaults` on `project`."""
    svcgen = Path(sys.executable).parent / "svcgen"
    assert svcgen.is_file(), f"{svcgen} missing: install the repo (`make install`)"
    data_args = [arg for k, v in (data or {}).items() for arg in ("--data", f"{k}={v}")]
    args = ["update", str(project.path), "--defaults", "--conflict", conflict, *data_args]
    return run(str(svcgen), *args, cwd=project.path, env=project.env, check=check)
