"""Render a project with Copier into a staging folder, then move it into place.

The staging folder is a hidden sibling of the destination (same filesystem, so the
final move is a rename): an error or Ctrl-C at any point leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def files_of(root: Path) -> list[str]:
    """Every file under `root` (relative, sorted), git's own folder left out."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in filenames:
            found.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(found)


def _missing_parents(path: Path) -> list[Path]:
    missing = []
    for parent in path.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


@contextmanager
def staging(dest: Path, *, near: bool = True) -> Iterator[Path]:
    """A throwaway folder to render into, named like `dest` (for `_folder_name`).

    With `near`, it sits next to `dest` so moving it there is a rename; every folder
    created for it is removed on the way out unless the project was moved into place.
    """
    created = _missing_parents(dest) if near else []
    if near:
        dest.parent.mkdir(parents=True, exist_ok=True)
        box = Path(tempfile.mkdtemp(prefix=f".{dest.name}.svcgen-", dir=dest.parent))
    else:
        box = Path(tempfile.mkdtemp(prefix="svcgen-"))
    try:
        yield box / dest.name
    finally:
        shutil.rmtree(box, ignore_errors=True)
        for parent in created:  # deepest first; only if still empty (nothing moved there)
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()


def render(
    source: str,
    target: Path,
    answers: Mapping[str, Any],
    *,
    vcs_ref: str | None = None,
    skip_tasks: bool = False,
) -> None:
    """`copier copy` with the resolved answers: Copier validates and derives the rest."""
    import copier  # slow to import: only when generating

    copier.run_copy(
        source,
        str(target),
        data=dict(answers),
        vcs_ref=vcs_ref,
        defaults=True,
        unsafe=True,
        quiet=True,
        skip_tasks=skip_tasks,
    )


def move_into_place(rendered: Path, dest: Path) -> None:
    """Rename the rendered tree to `dest`, or merge it into an existing folder (--force).

    Merging replaces files the template also has and keeps the rest; an existing
    `.git` is kept as it is.
    """
    if not dest.exists():
        os.replace(rendered, dest)
        return
    for dirpath, dirnames, filenames in os.walk(rendered):
        relative = Path(dirpath).relative_to(rendered)
        if relative == Path(".") and (dest / ".git").exists() and ".git" in dirnames:
            dirnames.remove(".git")
        target_dir = dest / relative
        if target_dir.exists() and not target_dir.is_dir():
            target_dir.unlink()
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            target = target_dir / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(Path(dirpath) / name, target)


def lock(project: Path) -> str | None:
    """Write the project's uv.lock, which its CI and image build install from.

    Returns None once locked, else one line saying why not and how to make it later.
    """
    try:
        from uv import find_uv_bin

        uv = find_uv_bin()
    except (ImportError, FileNotFoundError):
        uv = shutil.which("uv") or ""
    if not uv:
        return "uv.lock not created: uv not found; run `make install` (or `uv lock`) before pushing"
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT"}}
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    try:
        result = subprocess.run(
            [uv, "lock", "--quiet", "--no-progress"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        reason = str(error)
    else:
        if result.returncode == 0:
            return None
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        errors = [line[len("error:") :].strip() for line in lines if line.startswith("error:")]
        reason = (errors or lines or [f"uv lock exited {result.returncode}"])[0]
    return (
        f"uv.lock not created ({reason}); run `uv lock` in the project with network access "
        "and commit uv.lock before pushing"
    )
