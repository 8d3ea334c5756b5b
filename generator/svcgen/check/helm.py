"""What a Helm chart turns on, read without rendering it: `.Values` switches (values.yaml and
the chart's scenario files: values-prod.yaml, ci/*.yaml, ...), template blocks that nothing
turns on, and values.yaml mappings that say `enabled: false`."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from .repo import Repo, yaml_docs


def lookup(values: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(values, dict) or part not in values:
            return None
        values = values[part]
    return values


def scenario_files(repo: Repo, chart: PurePosixPath) -> list[PurePosixPath]:
    """Values files a deployment or chart-testing uses besides values.yaml:
    values-prod.yaml, prod-values.yaml, values.prod.yaml, ci/*.yaml."""
    key = ("scenarios", chart)
    if key not in repo.memo:
        repo.memo[key] = findscenario_files(repo, chart)
    found: list[PurePosixPath] = repo.memo[key]
    return found


def findscenario_files(repo: Repo, chart: PurePosixPath) -> list[PurePosixPath]:
    return [
        p
        for p in repo.files
        if p.suffix in {".yaml", ".yml"}
        and (
            (p.parent == chart and p.name != "values.yaml" and "values" in p.name)
            or p.parent == chart / "ci"
        )
    ]


def switch(repo: Repo, chart: PurePosixPath, name: str) -> tuple[bool, list[str]]:
    """(is `.Values.<name>` truthy by default, the scenario files that make it truthy)."""
    docs = yaml_docs(repo.text(chart / "values.yaml"))
    default = bool(docs and lookup(docs[0], name))
    scenarios = [
        str(p.relative_to(chart))
        for p in scenario_files(repo, chart)
        if any(lookup(doc, name) for doc in yaml_docs(repo.text(p)))
    ]
    return default, scenarios


ACTION = re.compile(r"\{\{-?\s*(if|with|range|define|block|else|end)\b(.*?)-?\}\}", re.DOTALL)


def dead_ranges(repo: Repo, chart: PurePosixPath, text: str) -> list[tuple[int, int]]:
    """Parts of a Helm template inside `if .Values.x` / `with .Values.x` blocks that
    nothing turns on (off in values.yaml and in every scenario file)."""
    ranges: list[tuple[int, int]] = []
    stack: list[tuple[bool, int]] = []  # (dead, where the block's body starts)
    for match in ACTION.finditer(text):
        word, rest = match.group(1), match.group(2).strip()
        if word in {"if", "with"}:
            negated = rest.startswith("not ")
            flag = re.fullmatch(r"(?:not\s+)?\.Values\.([\w.]+)", rest)
            dead = False
            if flag:
                default, scenarios = switch(repo, chart, flag.group(1))
                on = default or bool(scenarios)
                off = not default or bool(scenarios)
                dead = not off if negated else not on
            stack.append((dead, match.end()))
        elif word in {"range", "define", "block"}:
            stack.append((False, match.end()))
        elif word == "else" and stack:
            dead, start = stack.pop()
            if dead:
                ranges.append((start, match.start()))
            stack.append((False, match.end()))  # what renders while the switch is off
        elif word == "end" and stack:
            dead, start = stack.pop()
            if dead:
                ranges.append((start, match.start()))
    return ranges


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def switched_off(text: str, number: int) -> bool:
    """A values.yaml line inside a mapping (at any depth) that says `enable(d): false`:
    `seccompProfile: {enable: false, type: RuntimeDefault}` sets no seccomp profile."""
    lines = text.split("\n")
    index = number - 1
    indent = _indent(lines[index]) if index < len(lines) else 0
    while indent > 0:
        parent = index - 1
        while parent >= 0 and (
            not lines[parent].strip()
            or lines[parent].lstrip().startswith("#")
            or _indent(lines[parent]) >= indent
        ):
            parent -= 1
        sibling = parent + 1
        while sibling < len(lines) and (
            not lines[sibling].strip() or _indent(lines[sibling]) >= indent
        ):
            if _indent(lines[sibling]) == indent and re.match(
                r"\s*enabled?:\s*false\b", lines[sibling]
            ):
                return True
            sibling += 1
        if parent < 0:
            break
        index, indent = parent, _indent(lines[parent])
    return False
