"""Where each generated repo stands against its template's releases.

For each repo: the template version it is on (`_commit`), the newest release tag of its
template (`_src_path`), whether its git tree is clean, and whether updating would conflict,
found by running the update in a temporary clone of its last commit (the repo is untouched).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from ..template import newest_release
from . import run


@dataclass(frozen=True)
class RepoStatus:
    path: str
    version: str | None  # `_commit` of .copier-answers.yml
    newest: str | None  # the template's newest release tag
    clean: bool | None  # git tree without uncommitted changes
    state: str  # current | behind | conflicts | error
    conflicts: list[str]
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def current(self) -> bool:
        return self.state == "current"


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def _version(ref: str) -> Version | None:
    try:
        return Version(ref)
    except InvalidVersion:
        return None


def dry_run_conflicts(path: Path, vcs_ref: str) -> list[str]:
    """Files that updating `path` to `vcs_ref` would leave conflicted, in a throwaway clone."""
    with tempfile.TemporaryDirectory(prefix="svcgen-status-") as tmp:
        clone = Path(tmp) / path.name
        cloned = _git("clone", "--quiet", str(path), str(clone))
        if cloned.returncode != 0:
            raise run.Refused(f"cannot clone {path}: {cloned.stderr.strip()}")
        return run.update(clone, run.read_answers(clone), vcs_ref=vcs_ref).conflicts


def status_of(path: Path) -> RepoStatus:
    shown = str(path)
    try:
        answers = run.read_answers(path)
    except run.Refused as error:
        return RepoStatus(shown, None, None, None, "error", [], str(error))
    version = str(answers["_commit"])
    clean = not _git("status", "--porcelain", "--", ".", cwd=path).stdout.strip()
    try:
        newest = newest_release(str(answers["_src_path"]))
        old, new = _version(version), _version(newest or "")
        if newest is None or (old is not None and new is not None and new <= old):
            return RepoStatus(shown, version, newest, clean, "current", [])
        conflicts = dry_run_conflicts(path, newest)
    except Exception as error:  # a template that is gone, a failing migration, ...
        return RepoStatus(shown, version, None, clean, "error", [], str(error))
    return RepoStatus(
        shown, version, newest, clean, "conflicts" if conflicts else "behind", conflicts
    )


def find_repos(paths: list[Path]) -> list[Path]:
    """Each path that is a generated repo, and the generated repos directly inside the others."""
    found: list[Path] = []
    for path in paths:
        if (path / run.ANSWERS_FILE).is_file():
            found.append(path)
        else:
            found += sorted(p.parent for p in path.glob(f"*/{run.ANSWERS_FILE}"))
    return found
