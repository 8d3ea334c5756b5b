"""The wizard in an 80x24 terminal, as a user sees it: a pseudo-terminal (pexpect) whose output
is played on a VT100 screen (pyte), so "fits" and "wraps" are judged on the screen itself."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from pathlib import Path

import pexpect
import pyte
import pytest

from .support import questions
from .test_cli_wizard import CTRL_C, DOWN, SPACE, SVCGEN, drive

COLUMNS, LINES = 80, 24


class Terminal:
    """A pexpect child whose output also lands on an 80x24 screen."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.screen = pyte.Screen(COLUMNS, LINES)
        self.stream = pyte.Stream(self.screen)
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS)}
        env.update(LINES=str(LINES), PROMPT_TOOLKIT_NO_CPR="1")
        # rendering this checkout's uncommitted template warns; an installed svcgen does not
        env["PYTHONWARNINGS"] = "ignore::copier.errors.DirtyLocalWarning"
        env.pop("SVCGEN_TEMPLATE", None)
        self.child = pexpect.spawn(
            SVCGEN, [*args, "--vcs-ref", "HEAD"], cwd=str(cwd), env=env, encoding="utf-8",
            codec_errors="replace", dimensions=(LINES, COLUMNS), timeout=60,
        )  # fmt: skip
        self.child.logfile_read = self

    def write(self, data: str) -> None:  # pexpect's logfile_read
        self.stream.feed(data)

    def flush(self) -> None:
        pass

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def text(self) -> str:
        """The screen's words in reading order, each wrapped line joined to the next."""
        return " ".join(" ".join(self.lines()).split())

    def finish(self) -> int:
        self.child.expect(pexpect.EOF)
        self.child.close()
        return int(self.child.exitstatus)


def test_the_banner_counts_the_questions_it_will_still_ask(tmp_path: Path) -> None:
    term = Terminal("new", str(tmp_path / "x"), "-f", "flask", "-s", "redis", cwd=tmp_path)
    term.child.expect(r"\bproject_name: ")
    assert f"{len(questions()) - 2} questions from copier.yml" in term.text(), term.lines()
    term.child.send(CTRL_C)
    assert term.finish() == 130


def test_the_summary_sits_right_above_the_confirmation_and_no_exits_0(tmp_path: Path) -> None:
    term = Terminal("new", "d", cwd=tmp_path)
    drive(term.child, {})
    term.child.expect([r"\(Y/n\)", pexpect.TIMEOUT], timeout=3)  # the prompt's last redraw
    lines = term.lines()
    confirm = next(i for i, line in enumerate(lines) if "(Y/n)" in line)
    title = next(i for i, line in enumerate(lines) if line.startswith("Project in"))
    shown = {line.split()[0] for line in lines[title + 1 : confirm] if line.strip()}
    assert set(questions()) <= shown, f"every answer on the screen with the question: {lines}"
    above = [line for line in lines[title:confirm] if line.strip()][-1]
    assert "files to create" in above, lines
    term.child.send("n")
    term.child.expect("Nothing was created")
    assert term.finish() == 0, "declining is not an error"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_broken_rule_is_shown_whole(tmp_path: Path) -> None:
    term = Terminal("new", str(tmp_path / "x"), cwd=tmp_path)
    term.child.expect(r"\bproject_name: ")
    term.child.send("\x15" + "Bad Name!" + "\r")
    term.child.expect(r"characters\)")
    term.child.expect(r"\bproject_name: ")  # asked again
    rule = questions()["project_name"]["validator"]
    sentence = " ".join(re.sub(r"{%.*?%}", "", rule).split())
    assert len(sentence) > COLUMNS
    assert sentence in term.text(), term.lines()
    assert all(len(line) <= COLUMNS for line in term.lines())
    term.child.send(CTRL_C)
    assert term.finish() == 130


def test_the_chosen_services_are_listed_by_name(tmp_path: Path) -> None:
    term = Terminal("new", str(tmp_path / "x"), cwd=tmp_path)

    def tick_two(child: pexpect.spawn) -> None:
        child.send(SPACE + DOWN + DOWN + SPACE + "\r")
        child.expect("services: PostgreSQL, RabbitMQ")
        child.send(CTRL_C)

    with pytest.raises(pexpect.EOF):
        drive(term.child, {"services": tick_two})
    assert "services: PostgreSQL, RabbitMQ" in term.text()


def help_of(*args: str) -> str:
    env = {**os.environ, "COLUMNS": str(COLUMNS), "TERM": "dumb"}
    result = subprocess.run(
        [SVCGEN, *args], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout


@pytest.mark.parametrize("command", [[], ["new"], ["update"], ["options"], ["rehearse"]])
def test_help_reads_cleanly_at_80_columns(command: list[str]) -> None:
    text = help_of(*command, "--help")
    lines = text.splitlines()
    assert all(len(line) <= COLUMNS for line in lines), text
    prose = [line.strip() for line in lines if line.strip() and line.lstrip()[0] not in "╭│╰"]
    for line, after in itertools.pairwise(prose):
        orphan = len(line.split()) <= 2 and not line.endswith((".", ":", ")"))
        assert not orphan or after.startswith("Usage"), f"orphan words {line!r}:\n{text}"


def test_options_read_cleanly_at_80_columns() -> None:
    text = help_of("options")
    lines = text.splitlines()
    assert all(len(line) <= COLUMNS for line in lines), text
    for name in questions():
        assert any(line.startswith(f"{name} (") for line in lines), f"{name} whole:\n{text}"
