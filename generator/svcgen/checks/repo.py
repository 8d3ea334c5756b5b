"""What every check reads: a repository's files, read lazily, and the verdict type."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Literal

Status = Literal["PASS", "WARN", "FAIL"]

SKIP_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".venv", "venv", ".env", "env", "node_modules", "__pycache__",
        ".tox", ".nox", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".cache", "dist",
        "build", "site-packages", ".idea", ".vscode", "vendor", "target", ".terraform",
    }
)  # fmt: skip
CODE_SUFFIXES = frozenset(
    {".py", ".js", ".mjs", ".cjs", ".ts", ".go", ".java", ".kt", ".rb", ".rs", ".cs", ".php"}
)
TEXT_SUFFIXES = CODE_SUFFIXES | {
    ".yaml", ".yml", ".json", ".toml", ".ini", ".cfg", ".conf", ".env", ".sh", ".tpl",
    ".properties", ".tf", ".md", ".txt", "",
}  # fmt: skip
MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class Result:
    id: str
    title: str
    status: Status
    reason: str
    file: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    file: str
    line: int
    text: str


def is_test(path: PurePosixPath) -> bool:
    name = path.name
    return (
        any(
            part in {"tests", "test", "__tests__", "spec", "testdata", "e2e"} for part in path.parts
        )
        or name.startswith("test_")
        or name == "conftest.py"
        or bool(re.search(r"[._-](test|spec)\.[a-z]+$", name))
    )


@dataclass
class Repo:
    """A repository's files, read lazily and at most once."""

    root: Path
    _texts: dict[str, str | None] = field(default_factory=dict)

    @cached_property
    def files(self) -> list[PurePosixPath]:
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in sorted(filenames):
                full = Path(dirpath) / name
                found.append(PurePosixPath(full.relative_to(self.root).as_posix()))
        return found

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

    @cached_property
    def code(self) -> list[PurePosixPath]:
        """Application source files (tests left out)."""
        return [p for p in self.files if p.suffix in CODE_SUFFIXES and not is_test(p)]

    @cached_property
    def texts(self) -> list[PurePosixPath]:
        return [p for p in self.files if p.suffix in TEXT_SUFFIXES or ".env" in p.name]

    def grep(self, pattern: str | re.Pattern[str], files: Iterable[PurePosixPath]) -> Iterator[Hit]:
        regex = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
        for path in files:
            text = self.text(path)
            for match in regex.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                yield Hit(str(path), line, match.group(0).strip())

    def first(self, pattern: str, files: Iterable[PurePosixPath]) -> Hit | None:
        return next(self.grep(pattern, files), None)


def searched(repo: Repo) -> str:
    return f" in {len(repo.code)} source files"


def where(hit: Hit) -> str:
    return f"{hit.file}:{hit.line}"
