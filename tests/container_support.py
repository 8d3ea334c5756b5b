"""The generated Dockerfile as a container runtime sees it (stages, ENV, exec-form commands), for
test_container.py and test_container_sandbox.py.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

UID = 10001  # the image's user and group


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for key, rest in self.instructions if key == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"no {keyword} in stage {self.name}"
        return found[-1]

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for rest in self.all("ENV"):
            for part in shlex.split(rest):
                key, _, value = part.partition("=")
                env[key] = value
        return env


def stages(dockerfile: Path) -> list[Stage]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    result: list[Stage] = []
    logical = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(words[0], name))
        else:
            assert result, f"{keyword} before FROM"
            result[-1].instructions.append((keyword, rest))
    return result


def exec_form(rest: str) -> list[str]:
    parsed = json.loads(rest)
    assert isinstance(parsed, list)
    assert all(isinstance(item, str) for item in parsed)
    return parsed


def healthcheck_probe(stage: Stage) -> list[str]:
    healthcheck = stage.last("HEALTHCHECK")
    assert " CMD " in healthcheck, healthcheck
    return exec_form(healthcheck.split(" CMD ", 1)[1])
