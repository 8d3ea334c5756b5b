"""Where the services are: a folder of repositories, a repository of services.

A folder whose sub-folders are repositories (`.git`, `.copier-answers.yml`) is audited
repo by repo. In a repository, a service is a folder with a language manifest
(pyproject.toml, package.json, go.mod, ...) or a production Dockerfile next to runtime
code; the root is the only service unless two or more such folders sit below it (a
monorepo). Manifests, charts, Dockerfiles and CI outside every service count for the
services they name (an image, a chart, a file or a path that matches the service).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .builds import has_placeholders, is_dockerfile, is_production_name
from .ci import ci_files
from .kubernetes import find_manifests
from .repo import SKIP_DIRS, Repo
from .source import NOT_RUNTIME_DIRS, is_placeholder_path, is_runtime

MARKERS = frozenset(
    {
        "pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", "Pipfile",
        "package.json", "go.mod", "Cargo.toml", "pom.xml", "build.gradle", "build.gradle.kts",
        "Gemfile", "composer.json", "mix.exs",
    }
)  # fmt: skip
REPO_MARKERS = (".git", ".copier-answers.yml")
#: Folder names that say nothing about the service: use the parent's name instead.
GENERIC_NAMES = frozenset({"src", "app", "server", "service", "cmd", "main", "source", "code"})


@dataclass
class Service:
    name: str
    path: PurePosixPath  # relative to the repository's root; "." for the root
    repo: Repo  # the repository seen through this service's files


def find_repos(root: Path) -> list[Path]:
    """The repositories to audit: `root` itself, or its sub-folders that are repositories."""
    if any((root / marker).exists() for marker in REPO_MARKERS):
        return [root]
    subs = [
        d
        for d in sorted(root.iterdir())
        if d.is_dir()
        and d.name not in SKIP_DIRS
        and any((d / marker).exists() for marker in REPO_MARKERS)
    ]
    return subs or [root]


def _excluded(folder: PurePosixPath) -> bool:
    return any(
        part in NOT_RUNTIME_DIRS or part in SKIP_DIRS or part.startswith(".")
        for part in folder.parts
    ) or is_placeholder_path(folder)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def service_name(repo: Repo, folder: PurePosixPath) -> str:
    parts = [p for p in folder.parts if p != "."]
    while parts and parts[-1].lower() in GENERIC_NAMES and len(parts) > 1:
        parts.pop()
    return parts[-1] if parts else repo.root.name


def _inside(path: PurePosixPath, folder: PurePosixPath) -> bool:
    return str(folder) == "." or folder in path.parents


def _candidates(repo: Repo) -> list[PurePosixPath]:
    folders: dict[PurePosixPath, bool] = {}
    code = [p for p in repo.all_files if is_runtime(p)]
    for path in repo.all_files:
        folder = path.parent
        if _excluded(folder) and str(folder) != ".":
            continue
        if (
            path.name in MARKERS
            or path.suffix == ".csproj"
            or (
                is_dockerfile(path)
                and is_production_name(path)
                and not has_placeholders(repo, path)
                and (str(folder) == "." or any(_inside(c, folder) for c in code))
            )
        ):
            folders[folder] = True
    return sorted(folders, key=lambda p: (len(p.parts), str(p)))


def _roots(repo: Repo) -> list[PurePosixPath]:
    found = _candidates(repo)
    root = PurePosixPath(".")
    below = [c for c in found if c != root]
    tops = [c for c in below if not any(o != c and o in c.parents for o in below)]
    if len(tops) >= 2:
        has_own_image = any(
            is_dockerfile(p) and p.parent == root and is_production_name(p) for p in repo.all_files
        )
        return ([root] if has_own_image else []) + tops
    if root in found or not tops:
        if root in found or find_manifests(repo).files:
            return [root]
        return []
    return tops


def _matches(name: str, text: str) -> bool:
    wanted = _norm(name)
    return bool(wanted) and wanted in {_norm(t) for t in re.split(r"[\s/:@=\"',.]+", text) if t}


def find_services(repo: Repo) -> list[Service]:
    roots = _roots(repo)
    if not roots:
        return []
    root = PurePosixPath(".")
    if roots == [root]:
        return [Service(service_name(repo, root), root, repo)]
    named = {folder: service_name(repo, folder) for folder in roots}

    def owner(path: PurePosixPath) -> PurePosixPath | None:
        inside = [f for f in roots if f != root and _inside(path, f)]
        return max(inside, key=lambda f: len(f.parts)) if inside else None

    own: dict[PurePosixPath, list[PurePosixPath]] = {f: [] for f in roots}
    outside: list[PurePosixPath] = []
    for path in repo.all_files:
        folder = owner(path)
        if folder is not None:
            own[folder].append(path)
        elif root in roots:
            own[root].append(path)
        else:
            outside.append(path)

    # What lies outside every service counts for the services it names: a manifest, chart
    # template or Dockerfile by its file name or image (one naming a single service beats one
    # naming several), a chart's other files by the chart's name or values, CI by the path.
    manifests = find_manifests(repo.view(outside))
    ci = set(ci_files(repo.view(outside)))
    services = [f for f in roots if f != root]

    def naming(path: PurePosixPath) -> list[PurePosixPath]:
        images = " ".join(re.findall(r"image:\s*(\S+)", repo.text(path)))
        words = f"{path.stem} {path.name} {images}"
        return [f for f in services if _matches(named[f], words)]

    chart_users = {
        chart: [
            f
            for f in services
            if _matches(
                named[f],
                " ".join(repo.text(chart / n) for n in ("Chart.yaml", "values.yaml"))
                + f" {chart.name}",
            )
        ]
        for chart in manifests.charts
    }
    alone: dict[PurePosixPath, list[PurePosixPath]] = {f: [] for f in services}
    together: dict[PurePosixPath, list[PurePosixPath]] = {f: [] for f in services}
    for path in outside:
        chart = next((c for c in manifests.charts if c in path.parents), None)
        if path in ci:
            text = repo.text(path)
            mentioned = [f for f in services if str(f) in text]
            for folder in mentioned or services:
                own[folder].append(path)
        elif path in manifests.files or is_dockerfile(path):
            found = naming(path)
            if len(found) == 1:
                alone[found[0]].append(path)
            elif found:
                for folder in found:
                    together[folder].append(path)
            elif chart is not None:  # the chart's helpers and shared templates
                for folder in chart_users[chart]:
                    own[folder].append(path)
        elif chart is not None:  # values files, Chart.yaml
            for folder in chart_users[chart]:
                own[folder].append(path)
        elif len(path.parts) == 1:  # root files: .dockerignore, compose, Makefile, ...
            for folder in services:
                own[folder].append(path)
    for folder in services:
        own[folder].extend(alone[folder] or together[folder])
    return [Service(named[f], f, repo.view(own[f])) for f in roots]
