"""The interactive wizard, driven in a real pseudo-terminal (pexpect), keys and all."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect
import pytest
import yaml

from .support import questions

SVCGEN = str(Path(sys.executable).parent / "svcgen")
DOWN, SPACE, ENTER, CLEAR_LINE, CTRL_C = "\x1b[B", " ", "\r", "\x15", "\x03"


def spawn(*args: str, cwd: Path) -> pexpect.spawn:
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "COLUMNS": "200",
        "LINES": "50",
        "PROMPT_TOOLKIT_NO_CPR": "1",  # pexpect answers no cursor-position requests
    }
    env.pop("SVCGEN_TEMPLATE", None)
    return pexpect.spawn(
        SVCGEN,
        [*args, "--vcs-ref", "HEAD"],  # the working tree's copier.yml
        cwd=str(cwd),
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        dimensions=(50, 200),
        timeout=60,
    )


def press_enter(child: pexpect.spawn) -> None:
    child.send(ENTER)


def drive(child: pexpect.spawn, keys: dict[str, Callable[[pexpect.spawn], None]]) -> list[str]:
    """Answer each prompt as it appears (by question name); Enter for the rest.

    Returns the questions seen, in order. Stops at the final confirmation. Only later
    questions are looked for after each answer: prompt_toolkit redraws answered ones.
    """
    names = list(questions())
    seen: list[str] = []
    start = 0
    while True:
        later = names[start:]
        index = child.expect([rf"\b{name}: " for name in later] + [r"Create .*\?"])
        if index == len(later):
            return seen
        name = later[index]
        seen.append(name)
        start = names.index(name) + 1
        keys.get(name, press_enter)(child)


def answers_of(dest: Path) -> dict[str, Any]:
    loaded = yaml.safe_load((dest / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def type_text(text: str) -> Callable[[pexpect.spawn], None]:
    def send(child: pexpect.spawn) -> None:
        child.send(CLEAR_LINE + text + ENTER)

    return send


def bad_name_then_good(child: pexpect.spawn) -> None:
    child.send(CLEAR_LINE + "Bad Name!" + ENTER)
    child.expect("project_name must start with a letter")  # re-asked with the rule it broke
    child.send(CLEAR_LINE + "Pexpect Service" + ENTER)


def pick_flask(child: pexpect.spawn) -> None:
    child.send(DOWN)  # FastAPI is the default; one down is Flask
    child.send(ENTER)


def tick_postgres_and_rabbitmq(child: pexpect.spawn) -> None:
    child.send(SPACE)  # PostgreSQL
    child.send(DOWN + DOWN)
    child.send(SPACE)  # RabbitMQ
    child.send(ENTER)


def test_the_wizard_produces_the_answers_that_were_typed(tmp_path: Path) -> None:
    dest = tmp_path / "wizard"
    child = spawn("new", str(dest), cwd=tmp_path)
    seen = drive(
        child,
        {
            "project_name": bad_name_then_good,
            "framework": pick_flask,
            "services": tick_postgres_and_rabbitmq,
            "port": type_text("8123"),
            "metrics": lambda c: c.send("n"),
            "tracing": lambda c: c.send("y"),
        },
    )
    assert seen == list(questions()), "every copier.yml question, once, in order"
    summary = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)
    assert "files to create" in summary, "the summary comes before the confirmation"
    assert "--dry-run` lists them" in summary, "the file list is collapsed in the wizard"
    child.send("y")
    child.expect("Next steps")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    answers = answers_of(dest)
    assert answers["project_name"] == "Pexpect Service"
    assert answers["project_slug"] == "pexpect-service", "default derived from the typed name"
    assert answers["package_name"] == "pexpect_service"
    assert answers["framework"] == "flask"
    assert answers["services"] == ["postgres", "rabbitmq"]
    assert answers["port"] == 8123
    assert answers["metrics"] is False
    assert answers["tracing"] is True
    assert (dest / "src" / "pexpect_service" / "app.py").is_file()


@pytest.mark.parametrize("where", ["first question", "final confirmation"])
def test_ctrl_c_exits_130_and_leaves_nothing(tmp_path: Path, where: str) -> None:
    dest = tmp_path / "nothing"
    child = spawn("new", str(dest), cwd=tmp_path)
    if where == "first question":
        child.expect(r"\bproject_name: ")
    else:  # the project is already rendered into its staging folder by then
        drive(child, {})
        staging = [p for p in tmp_path.iterdir() if p.name.startswith(".nothing.svcgen-")]
        assert staging, "rendered next to the destination before the confirmation"
    child.send(CTRL_C)
    child.expect("nothing was created")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == []
