"""Which template svcgen generates from, its copier.yml at the ref Copier renders, its releases.

The copier.yml is read here (with the files it `!include`s, e.g. the service catalog); what
its questions mean is questionnaire.py's.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
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


def _git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=120
    )
    return result.stdout


def git_url(source: str) -> str:
    """A template source as git understands it (Copier also takes gh:, gl: and git+ forms)."""
    for alias, host in (("gh:", "https://github.com/"), ("gl:", "https://gitlab.com/")):
        if source.startswith(alias):
            return host + source.removeprefix(alias).lstrip("/")
    return source.removeprefix("git+")


def newest_release(source: str) -> str | None:
    """The newest final PEP 440 tag of a git template: the ref `copier copy` and
    `copier update` take when none is given. OSError when its tags cannot be listed."""
    try:
        listing = _git("ls-remote", "--tags", "--refs", "--", git_url(source))
    except subprocess.CalledProcessError as error:
        raise OSError(
            f"cannot list the template's tags ({source}): {error.stderr.strip()}"
        ) from None
    except subprocess.SubprocessError as error:
        raise OSError(f"cannot list the template's tags ({source}): {error}") from None
    releases = []
    for line in listing.splitlines():
        tag = line.partition("\t")[2].removeprefix("refs/tags/")
        try:
            version = Version(tag)
        except InvalidVersion:
            continue
        if not version.is_prerelease:
            releases.append((version, tag))
    return max(releases)[1] if releases else None


def _latest_tag(source: str) -> str | None:
    """`newest_release`, or None when the tags cannot be listed (Copier then renders HEAD)."""
    try:
        return newest_release(source)
    except OSError:
        return None


def _is_git_root(path: Path) -> bool:
    try:
        top = _git("rev-parse", "--show-toplevel", cwd=path).strip()
    except (OSError, subprocess.SubprocessError):
        return False
    return Path(top).resolve() == path.resolve()


def _parse_config(text: str, where: str, read: Callable[[str], str]) -> dict[str, Any]:
    """copier.yml as Copier reads it: `!include path` (relative to the template's root) is the
    list of the YAML documents of that file, lists among them flattened."""

    class Loader(yaml.SafeLoader):
        pass

    def include(loader: yaml.SafeLoader, node: yaml.Node) -> list[Any]:
        name = str(loader.construct_scalar(node))  # type: ignore[arg-type]
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"{where}: !include {name} must be a path inside the template")
        included: list[Any] = []
        for document in yaml.load_all(read(name), Loader=Loader):
            if document is not None:
                included += document if isinstance(document, list) else [document]
        return included

    Loader.add_constructor("!include", include)
    data = yaml.load(text, Loader=Loader)
    if not isinstance(data, dict):
        raise ValueError(f"{where} is not a mapping")
    return data


def load_catalog(root: Path = TEMPLATE_ROOT) -> list[dict[str, Any]]:
    """The backing-service catalog (catalog/services.yml) as copier.yml includes it."""
    catalog = read_config(root, str(root))["service_catalog"]["default"]
    assert isinstance(catalog, list), "service_catalog is a list"
    return catalog


def read_config(folder: Path, source: str) -> dict[str, Any]:
    """copier.yml of the template checked out at `folder`, as Copier reads it."""
    for name in CONFIG_NAMES:
        if (folder / name).is_file():
            return _parse_config(
                (folder / name).read_text(encoding="utf-8"),
                name,
                lambda path: (folder / path).read_text(encoding="utf-8"),
            )
    raise FileNotFoundError(f"no copier.yml in {source}")


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
                    text = _git("show", f"{ref}:{name}", cwd=path)
                except subprocess.CalledProcessError:
                    continue
                return _parse_config(
                    text, name, lambda included: _git("show", f"{ref}:{included}", cwd=path)
                )
            raise FileNotFoundError(f"no copier.yml in {source} at {ref}")
        return read_config(path, source)
    ref = vcs_ref or _latest_tag(source)
    with tempfile.TemporaryDirectory(prefix="svcgen-template-") as tmp:
        branch = ["--branch", ref] if ref and ref != "HEAD" else []
        try:
            _git("clone", "--quiet", "--depth", "1", *branch, "--", source, tmp)
        except subprocess.CalledProcessError as error:
            raise FileNotFoundError(f"cannot clone {source}: {error.stderr.strip()}") from None
        return read_config(Path(tmp), source)
