"""What every command shares: the consoles, exit codes, `fail`, terminal tests, --data."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

#: Exit codes: 1 failed or refused, 2 bad input, 130 interrupted (Ctrl-C).
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def out() -> Console:
    return Console(highlight=False, soft_wrap=False)


def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err().print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def stdout_is_terminal() -> bool:
    """A person reads the output (a table), not a pipe or a log (whole plain lines)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def parse_data(items: list[str] | None, option: str = "--data") -> dict[str, str]:
    """KEY=VALUE options as a mapping; anything else fails with exit 2."""
    data: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"{option} expects KEY=VALUE, got {item!r}", EXIT_USAGE)
        data[key.strip()] = value
    return data
