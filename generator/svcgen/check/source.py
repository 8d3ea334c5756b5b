"""Which files are a service's runtime code, and which parts of a file are code at all.

A check passes on the service's own runtime code only: tests, benchmarks, docs, examples
and tooling scripts are not evidence, nor is text inside comments or a regular expression
(a checker's own pattern names `os.environ` without reading anything).
"""

from __future__ import annotations

import bisect
import io
import re
import tokenize
from pathlib import PurePosixPath

TEST_DIRS = frozenset(
    {"tests", "test", "__tests__", "spec", "specs", "testdata", "e2e", "fixtures", "__mocks__"}
)
#: Folders whose code never runs in the service: tests, benchmarks, docs, tooling.
NOT_RUNTIME_DIRS = TEST_DIRS | {
    "bench", "benchmark", "benchmarks", "docs", "doc", "examples", "example", "samples",
    "sample", "scripts", "tools", "hack", "cypress", "playwright", "stories", "loadtest",
    "loadtests", "locust", "perf", "mocks", "mock", "demo", "demos",
}  # fmt: skip
CODE_SUFFIXES = frozenset(
    {".py", ".js", ".mjs", ".cjs", ".ts", ".go", ".java", ".kt", ".rb", ".rs", ".cs", ".php"}
)
_C_LIKE = frozenset({".js", ".mjs", ".cjs", ".ts", ".go", ".java", ".kt", ".rs", ".cs", ".php"})
_HASH_COMMENTS = frozenset({".rb", ".php"})
_REGEX_LIKE = re.compile(r"\\[.bsdwSDW()\[\]|]|\(\?[:=!<P]")


def is_test(path: PurePosixPath) -> bool:
    name = path.name
    return (
        any(part in TEST_DIRS for part in path.parts)
        or name.startswith("test_")
        or name == "conftest.py"
        or bool(re.search(r"[._-](test|spec)\.[a-z]+$", name))
    )


def is_placeholder_path(path: PurePosixPath) -> bool:
    """An unrendered template file: `{{ }}` in its path, or a `.jinja` / `.j2` suffix."""
    return "{{" in str(path) or "{%" in str(path) or path.suffix in {".jinja", ".j2", ".jinja2"}


def is_runtime(path: PurePosixPath) -> bool:
    """Application source: code that ships, not tests, benchmarks, docs or tooling."""
    return (
        path.suffix in CODE_SUFFIXES
        and not is_test(path)
        and not any(part in NOT_RUNTIME_DIRS or part.startswith(".") for part in path.parts[:-1])
        and not is_placeholder_path(path)
    )


class Spans:
    """Where a file's comments and string literals are, to tell code from text."""

    def __init__(self, comments: list[tuple[int, int]], strings: list[tuple[int, int, bool]]):
        # strings: (start of content, end, looks like a regular expression)
        self._all = sorted([(a, b, True) for a, b in comments] + strings)
        self._starts = [a for a, _, _ in self._all]

    def _inside(self, offset: int) -> tuple[int, int, bool] | None:
        index = bisect.bisect_right(self._starts, offset) - 1
        if index >= 0:
            start, end, ignored = self._all[index]
            if start <= offset < end:
                return (start, end, ignored)
        return None

    def in_code(self, offset: int) -> bool:
        """Outside every comment and string literal."""
        return self._inside(offset) is None

    def in_code_or_text(self, offset: int) -> bool:
        """Outside comments and regular-expression-like literals (plain strings count)."""
        found = self._inside(offset)
        return found is None or not found[2]


def spans(text: str, suffix: str) -> Spans:
    if suffix == ".py":
        try:
            return _python_spans(text)
        except (tokenize.TokenError, SyntaxError, IndentationError):
            pass
    return _generic_spans(text, suffix)


def _python_spans(text: str) -> Spans:
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(row: int, col: int) -> int:
        return starts[row - 1] + col

    comments, strings = [], []
    fstring_middle = getattr(tokenize, "FSTRING_MIDDLE", -1)
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        start, end = offset(*token.start), offset(*token.end)
        if token.type == tokenize.COMMENT:
            comments.append((start, end))
        elif token.type == tokenize.STRING:
            quote = min(i for i in (token.string.find('"'), token.string.find("'")) if i >= 0)
            strings.append((start + quote + 1, end, bool(_REGEX_LIKE.search(token.string))))
        elif token.type == fstring_middle:
            strings.append((start, end, bool(_REGEX_LIKE.search(token.string))))
    return Spans(comments, strings)


def _generic_spans(text: str, suffix: str) -> Spans:
    comments: list[tuple[int, int]] = []
    strings: list[tuple[int, int, bool]] = []
    c_like, hashes = suffix in _C_LIKE, suffix in _HASH_COMMENTS or suffix not in _C_LIKE
    quotes = "\"'`" if suffix in {".js", ".mjs", ".cjs", ".ts", ".go"} else "\"'"
    if suffix == ".rs":
        quotes = '"'
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if (c_like and text.startswith("//", i)) or (hashes and char == "#"):
            end = text.find("\n", i)
            end = n if end < 0 else end
            comments.append((i, end))
            i = end
        elif c_like and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            comments.append((i, end))
            i = end
        elif char in quotes:
            j = i + 1
            while j < n and text[j] != char:
                if text[j] == "\\" and char != "`":
                    j += 1
                elif text[j] == "\n" and char != "`":
                    break
                j += 1
            strings.append((i + 1, j, bool(_REGEX_LIKE.search(text[i + 1 : j]))))
            i = j + 1
        else:
            i += 1
    return Spans(comments, strings)
