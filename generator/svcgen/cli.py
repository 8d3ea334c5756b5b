"""The `svcgen` command: one typer app; each product registers its command from its package.

new, options: svcgen/new/command.py · update, status: svcgen/update/command.py ·
check: svcgen/check/command.py · rehearse: svcgen/rehearse/command.py
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import __version__, distribution
from .check.command import check
from .new.command import new, options
from .rehearse.command import rehearse
from .update.command import status, update

app = typer.Typer(
    name="svcgen",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Generate production-ready, cloud-native Python services, keep them up to date, "
    "and audit any service repo against the cloud-native checklist.",
)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"svcgen {__version__}, {distribution.describe()}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version",
            "-V",
            callback=version_callback,
            is_eager=True,
            help="Show the version and exit.",
        ),
    ] = None,
) -> None:
    """svcgen: a Copier template and CLI for cloud-native Python services."""


# In the order `svcgen --help` lists them.
for command in (new, update, status, check, options, rehearse):
    app.command()(command)
