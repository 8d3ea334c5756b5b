"""Where the Copier template lives and what its copier.yml says."""

from __future__ import annotations

import os
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

from .distribution import packaged_template

CONFIG_NAMES = ("copier.yml", "copier.yaml")

#: The template svcgen carries: the packaged copy in an installed wheel, else the checkout
#: svcgen runs from (an editable install).
TEMPLATE_ROOT = packaged_template() or Path(__file__).resolve().parents[2]


def template_source() -> str:
    """The template to generate from: $SVCGEN_TEMPLATE (a path or git URL) or this repo."""
    return os.environ.get("SVCGEN_TEMPLATE", str(TEMPLATE_ROOT))


@cache
def copier_config(root: Path = TEMPLATE_ROOT) -> dict[str, Any]:
    """copier.yml as a mapping, settings (`_`-prefixed) included."""
    with (root / "copier.yml").open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{root / 'copier.yml'} is not a mapping")
    return data


def questions(root: Path = TEMPLATE_ROOT) -> dict[str, dict[str, Any]]:
    """The questions of copier.yml, in order, without the `_` settings."""
    return {k: v for k, v in copier_config(root).items() if not k.startswith("_")}


def _git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=120
    )
    return result.stdout


def _latest_tag(url: str) -> str | None:
    """The newest PEP 440 release tag, the ref `copier copy` uses when none is given."""
    try:
        listing = _git("ls-remote", "--tags", "--refs", "--", url)
    except (OSError, subprocess.SubprocessError):
        return None
    versions = []
    for line in listing.splitlines():
        tag = line.partition("\t")[2].removeprefix("refs/tags/")
        try:
            version = Version(tag)
        except InvalidVersion:
            continue
        if not version.is_prerelease:
            versions.append((version, tag))
    return max(versions)[1] if versions else None


def _is_git_root(path: Path) -> bool:
    try:
        top = _git("rev-parse", "--show-toplevel", cwd=path).strip()
    except (OSError, subprocess.SubprocessError):
        return False
    return Path(top).resolve() == path.resolve()


def _parse_config(text: str, where: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{where} is not a mapping")
    return data


def load_config(source: str, vcs_ref: str | None = None) -> dict[str, Any]:
    """copier.yml of `source` (a folder or git URL) at the ref Copier will render.

    Like Copier: a git template is read at `vcs_ref`, else at its newest release tag,
    else at HEAD (a local checkout then includes its uncommitted changes).
    """
    path = Path(source).expanduser()
    if path.is_dir():
        ref = (vcs_ref or _latest_tag(str(path.resolve()))) if _is_git_root(path) else None
        if ref and ref != "HEAD":
            for name in CONFIG_NAMES:
                try:
                    return _parse_config(_git("show", f"{ref}:{name}", cwd=path), name)
                except subprocess.CalledProcessError:
                    continue
            raise FileNotFoundError(f"no copier.yml in {source} at {ref}")
        for name in CONFIG_NAMES:
            if (path / name).is_file():
                return _parse_config((path / name).read_text(encoding="utf-8"), name)
        raise FileNotFoundError(f"no copier.yml in {source}")
    ref = vcs_ref or _latest_tag(source)
    with tempfile.TemporaryDirectory(prefix="svcgen-template-") as tmp:
        branch = ["--branch", ref] if ref and ref != "HEAD" else []
        try:
            _git("clone", "--quiet", "--depth", "1", *branch, "--", source, tmp)
        except subprocess.CalledProcessError as error:
            raise FileNotFoundError(f"cannot clone {source}: {error.stderr.strip()}") from None
        for name in CONFIG_NAMES:
            if (Path(tmp) / name).is_file():
                return _parse_config((Path(tmp) / name).read_text(encoding="utf-8"), name)
    raise FileNotFoundError(f"no copier.yml in {source}")
