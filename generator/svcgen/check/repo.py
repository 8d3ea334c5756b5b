"""What every check reads: a repository's files, read lazily, and the verdict type."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml

from .source import CODE_SUFFIXES, Spans, is_runtime, is_test, spans

__all__ = ["CODE_SUFFIXES", "Hit", "Repo", "Result", "Status", "is_test", "searched", "where"]

Status = Literal["PASS", "WARN", "FAIL"]

SKIP_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".venv", "venv", ".env", "env", "node_modules", "__pycache__",
        ".tox", ".nox", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".cache", "dist",
        "build", "site-packages", ".idea", ".vscode", "vendor", "target", ".terraform",
    }
)  # fmt: skip
TEXT_SUFFIXES = CODE_SUFFIXES | {
    ".yaml", ".yml", ".json", ".toml", ".ini", ".cfg", ".conf", ".env", ".sh", ".tpl",
    ".properties", ".tf", ".tfvars", ".md", ".txt", ".pem", ".key", ".xml", ".gradle", ".kts",
    ".ps1", ".bat", "",
}  # fmt: skip
MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class Result:
    id: str
    title: str
    status: Status
    reason: str
    file: str  # "path:line", or a path (a file or folder) when no line applies
    #: Every finding behind the verdict as (location, text), e.g. each secret, redacted.
    details: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    file: str
    line: int
    text: str


@dataclass
class Repo:
    """A repository's files, read lazily and at most once; `scope` narrows it to the
    files of one service (paths stay relative to the repository's root)."""

    root: Path
    scope: list[PurePosixPath] | None = None
    _texts: dict[str, str | None] = field(default_factory=dict)
    _spans: dict[str, Spans] = field(default_factory=dict)
    #: Whatever a check derives from this view's files, computed once.
    memo: dict[Any, Any] = field(default_factory=dict)

    @cached_property
    def all_files(self) -> list[PurePosixPath]:
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in sorted(filenames):
                full = Path(dirpath) / name
                found.append(PurePosixPath(full.relative_to(self.root).as_posix()))
        return found

    @cached_property
    def files(self) -> list[PurePosixPath]:
        return self.all_files if self.scope is None else self.scope

    def view(self, files: list[PurePosixPath]) -> Repo:
        """The same repository seen through `files` (texts shared, read once)."""
        view = Repo(self.root, sorted(files), self._texts, self._spans)
        view.__dict__["all_files"] = self.all_files
        return view

    def text(self, path: PurePosixPath) -> str:
        key = str(path)
        if key not in self._texts:
            try:
                full = self.root / key
                data = full.read_bytes() if full.stat().st_size <= MAX_BYTES else b""
                self._texts[key] = None if b"\0" in data[:4096] else data.decode("utf-8", "replace")
            except OSError:
                self._texts[key] = None
        return self._texts[key] or ""

    def spans(self, path: PurePosixPath) -> Spans:
        key = str(path)
        if key not in self._spans:
            self._spans[key] = spans(self.text(path), path.suffix)
        return self._spans[key]

    @cached_property
    def code(self) -> list[PurePosixPath]:
        """Runtime source files: no tests, benchmarks, docs, tooling or template files."""
        return [p for p in self.files if is_runtime(p)]

    @cached_property
    def texts(self) -> list[PurePosixPath]:
        return [p for p in self.files if p.suffix in TEXT_SUFFIXES or ".env" in p.name]

    def grep(
        self,
        pattern: str | re.Pattern[str],
        files: Iterable[PurePosixPath],
        *,
        within: Literal["all", "code", "code+text"] = "all",
    ) -> Iterator[Hit]:
        """Matches of `pattern`; `within="code"` keeps those outside comments and string
        literals, `"code+text"` those outside comments and regex-like literals."""
        regex = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
        for path in files:
            text = self.text(path)
            for match in regex.finditer(text):
                if within != "all":
                    where = self.spans(path)
                    keep = where.in_code if within == "code" else where.in_code_or_text
                    if not keep(match.start()):
                        continue
                line = text.count("\n", 0, match.start()) + 1
                yield Hit(str(path), line, match.group(0).strip())

    def first(
        self,
        pattern: str,
        files: Iterable[PurePosixPath],
        *,
        within: Literal["all", "code", "code+text"] = "all",
    ) -> Hit | None:
        return next(self.grep(pattern, files, within=within), None)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@lru_cache(maxsize=1024)
def yaml_docs(text: str) -> tuple[Any, ...]:
    """The YAML documents of `text` (none when it does not parse); parsed once per text.
    Shared between callers: read them, never change them."""
    try:
        return tuple(d for d in yaml.load_all(text, Loader=_LOADER) if d is not None)
    except yaml.YAMLError:
        return ()


def searched(repo: Repo) -> str:
    return f" in {len(repo.code)} source files"


def where(hit: Hit) -> str:
    return f"{hit.file}:{hit.line}"
