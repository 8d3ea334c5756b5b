"""Which Dockerfile builds the production image, found the way a build finds it.

Builds are read from compose files (`build:` context and `dockerfile`), CI steps
(`docker build -f`, `docker/build-push-action`'s `file`/`context`, `buildah bud -f`) and
skaffold.yaml. A Dockerfile named or placed for tests or development
(`Dockerfile.playwright`, `dev.Dockerfile`, `.devcontainer/`) is never judged as the
service's image unless CI builds it; nor is one with unrendered template placeholders.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from typing import Any

from .repo import Repo, yaml_docs
from .source import NOT_RUNTIME_DIRS, is_placeholder_path

_NOT_PRODUCTION = re.compile(
    r"(?i)(?:^|[._-])(?:tests?|e2e|playwright|cypress|selenium|dev|develop|development|local|"
    r"debug|devcontainer|bench|benchmark|integration|lint|docs?|ci|example|sandbox)(?:[._-]|$)"
)
_DEV_DIRS = frozenset({".devcontainer", "dev", "local", "devcontainer"}) | NOT_RUNTIME_DIRS


def is_dockerfile(path: PurePosixPath) -> bool:
    name = path.name
    return (
        name in {"Dockerfile", "Containerfile"}
        or name.endswith((".Dockerfile", ".dockerfile", ".Containerfile"))
        or name.startswith(("Dockerfile.", "Containerfile."))
    ) and not name.endswith((".dockerignore", ".jinja", ".j2"))


def is_production_name(path: PurePosixPath) -> bool:
    """Not named or placed for tests or development."""
    stem = re.sub(r"(?i)(?:^|[._-])?(?:docker|container)file(?:[._-]|$)?", ".", path.name)
    return not _NOT_PRODUCTION.search(stem) and not any(
        part in _DEV_DIRS for part in path.parts[:-1]
    )


@dataclass(frozen=True)
class Builds:
    """Dockerfiles referenced by the repository's build definitions."""

    ci: frozenset[PurePosixPath]  # built by CI or skaffold (what ships)
    compose: frozenset[PurePosixPath]  # built by a compose file

    def score(self, path: PurePosixPath) -> int:
        return 2 if path in self.ci else 1 if path in self.compose else 0


def _norm(*parts: str) -> PurePosixPath:
    return PurePosixPath(posixpath.normpath(posixpath.join(*parts)))


def _yaml(text: str) -> tuple[Any, ...]:
    return yaml_docs(text)


def _walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


_DOCKER_BUILD = re.compile(
    r"(?:docker|podman|buildah)\s+(?:buildx\s+)?(?:build|bud)\b(?P<args>[^\n;&|]*)"
)


def _cli_build(args: str, base: str) -> PurePosixPath | None:
    words = args.replace("\\\n", " ").split()
    file = context = None
    index = 0
    while index < len(words):
        word = words[index]
        if word in {"-f", "--file"} and index + 1 < len(words):
            file, index = words[index + 1], index + 2
            continue
        if word.startswith("--file="):
            file = word.split("=", 1)[1]
        elif word.startswith("-"):
            takes_value = word in {"-t", "--tag", "--build-arg", "--target", "--platform"}
            index += 2 if takes_value else 1
            continue
        else:
            context = word
        index += 1
    if "$" in (file or "") or "$" in (context or ""):
        return None
    if file:
        return _norm(base, file)
    return _norm(base, context or ".", "Dockerfile")


@cache
def _parse_builds(texts: tuple[tuple[str, str], ...]) -> Builds:
    ci: set[PurePosixPath] = set()
    compose: set[PurePosixPath] = set()
    for name, text in texts:
        path = PurePosixPath(name)
        base = str(path.parent)
        if "compose" in path.name:
            for doc in _yaml(text):
                services = doc.get("services") if isinstance(doc, dict) else None
                for service in (services or {}).values():
                    build = service.get("build") if isinstance(service, dict) else None
                    if isinstance(build, str):
                        compose.add(_norm(base, build, "Dockerfile"))
                    elif isinstance(build, dict):
                        context = str(build.get("context", "."))
                        dockerfile = str(build.get("dockerfile", "Dockerfile"))
                        compose.add(_norm(base, context, dockerfile))
            continue
        if path.name.startswith("skaffold"):
            for node in (n for doc in _yaml(text) for n in _walk(doc)):
                if "image" in node and ("context" in node or "docker" in node):
                    context = str(node.get("context", "."))
                    docker = node.get("docker")
                    file = docker.get("dockerfile") if isinstance(docker, dict) else None
                    ci.add(_norm(base, context, str(file or "Dockerfile")))
            continue
        # CI: paths are relative to the repository root (the checkout).
        for match in _DOCKER_BUILD.finditer(text):
            built = _cli_build(match.group("args"), ".")
            if built is not None:
                ci.add(built)
        for node in (n for doc in _yaml(text) for n in _walk(doc)):
            uses = str(node.get("uses", ""))
            with_ = node.get("with")
            if "build-push-action" in uses or "buildah-build" in uses:
                options = with_ if isinstance(with_, dict) else {}
                context = str(options.get("context", "."))
                file = options.get("file") or options.get("containerfiles")
                if file and "$" not in str(file):
                    ci.add(_norm(".", str(file).split()[0]))
                elif "$" not in context:
                    ci.add(_norm(".", context, "Dockerfile"))
    return Builds(frozenset(ci), frozenset(compose))


def build_files(repo: Repo) -> list[PurePosixPath]:
    return [
        p
        for p in repo.all_files
        if ("compose" in p.name and p.suffix in {".yml", ".yaml"})
        or p.name.startswith("skaffold")
        or (p.parts[:2] == (".github", "workflows"))
        or str(p) in {".gitlab-ci.yml", ".circleci/config.yml", "Jenkinsfile", "Makefile"}
        or p.name == "cloudbuild.yaml"
    ]


def builds(repo: Repo) -> Builds:
    files = build_files(repo)
    return _parse_builds(tuple((str(p), repo.text(p)) for p in files))


def has_placeholders(repo: Repo, path: PurePosixPath) -> bool:
    text = repo.text(path)
    return "{{" in text or "{%" in text or is_placeholder_path(path)


def dockerfiles(repo: Repo) -> tuple[list[PurePosixPath], list[PurePosixPath]]:
    """(the production Dockerfiles, the others: test, development or template ones)."""
    found = [p for p in repo.files if is_dockerfile(p)]
    known = builds(repo)
    usable = [p for p in found if not has_placeholders(repo, p)]
    production = [p for p in usable if is_production_name(p) or p in known.ci]
    if production:
        best = max(known.score(p) for p in production)
        production = [p for p in production if known.score(p) == best]
    production.sort(key=lambda p: (len(p.parts), p.name != "Dockerfile", str(p)))
    return production, [p for p in found if p not in production]


def production_dockerfiles(repo: Repo) -> list[PurePosixPath]:
    return dockerfiles(repo)[0]
