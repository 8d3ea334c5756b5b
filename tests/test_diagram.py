"""The generated README opens with a Mermaid diagram of what these answers generated, and
Mermaid's own parser (scripts/tools/mermaid, .tools/bin/mermaid-parse) accepts it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from .conftest import ProjectFactory
from .support import matrix, tool

# Combinations the other tests generate too (the projects are cached per session), chosen so that
# each service, the worker, the migration Job and metrics appear in some and not in others.
CASES: list[dict[str, Any]] = [
    answers
    for answers in matrix()
    if len(answers["services"]) in (0, 3) or answers["services"] in (["rabbitmq"], ["postgres"])
]
BROKEN = "# x\n\n```mermaid\nflowchart LR\n  a -->|\n```\n"


def diagram(readme: Path) -> str:
    text = readme.read_text(encoding="utf-8")
    found = re.search(r"^```mermaid\n(.*?)^```$", text, re.S | re.M)
    assert found, "no mermaid diagram in README.md"
    assert text.index("```mermaid") < text.index("## Quick start"), "the README opens with it"
    return found.group(1)


def test_the_diagram_parses_and_draws_these_answers(
    project: ProjectFactory, tmp_path: Path
) -> None:
    assert {c.get("metrics", True) for c in CASES} == {True, False}
    readmes = [project(answers, install=False).path / "README.md" for answers in CASES]
    canary = tmp_path / "broken.md"
    canary.write_text(BROKEN, encoding="utf-8")
    parse = tool("mermaid-parse")
    result = subprocess.run(
        [parse, *map(str, readmes)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": flowchart") == len(CASES), result.stdout
    rejected = subprocess.run(
        [parse, str(canary)], capture_output=True, text=True, timeout=300, check=False
    )
    assert rejected.returncode == 1, "the parser rejects a broken diagram (it checks something)"

    for answers, readme in zip(CASES, readmes, strict=True):
        drawn = diagram(readme)
        services = answers["services"]
        for node, label in (
            ("postgres", "PostgreSQL"),
            ("redis", "Redis"),
            ("rabbitmq", "RabbitMQ"),
        ):
            assert (label in drawn) == (node in services), (answers, drawn)
        assert ("Deployment worker" in drawn) == ("rabbitmq" in services)
        assert ("Job migrate" in drawn) == ("postgres" in services)
        assert ("/metrics" in drawn) == answers.get("metrics", True)
        for probe in ("/health/startup", "/health/live", "/health/ready"):
            assert probe in drawn
        assert "Deployment web" in drawn
        assert "Service :8000" in drawn
