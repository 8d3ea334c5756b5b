"""The `svcgen` command (minimal; the full wizard arrives with issue 7)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import copier
import typer

from .template import template_source

app = typer.Typer(no_args_is_help=True, help="Generate production-ready Python services.")


@app.command()
def new(
    dest: Annotated[Path, typer.Argument(help="Where to create the project")],
    defaults: Annotated[bool, typer.Option("--defaults", "--yes", help="Accept defaults")] = False,
) -> None:
    """Generate a new service into DEST."""
    copier.run_copy(template_source(), str(dest), defaults=defaults, unsafe=True)


@app.callback()
def main() -> None:
    """svcgen: a Copier template and CLI for cloud-native Python services."""
