"""`svcgen check`: the typer glue of the audit."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .. import console
from ..console import EXIT_FAILED, EXIT_USAGE, fail
from . import audit


class CheckFormat(StrEnum):
    table = "table"
    json = "json"
    sarif = "sarif"


def check(
    path: Annotated[
        Path, typer.Argument(help="Repo to audit (any service, not only ours).")
    ] = Path("."),
    output: Annotated[
        CheckFormat | None,
        typer.Option(
            "--format",
            help="table (plain lines when not a terminal), json (schema svcgen-check/2) "
            "or sarif (2.1.0, for code scanning).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Audit a service repo, service by service, against the cloud-native checklist.

    Config from the environment, no secrets, health endpoints, JSON logs, graceful
    shutdown, a hardened image, Kubernetes probes/resources/securityContext/HPA/PDB/
    NetworkPolicy, CI with tests. A monorepo is reported per service, a folder of repos
    per repo, a template as it renders. Secrets are never printed. Exits 0 when nothing
    FAILs, 1 otherwise, 2 when there is no service to audit.
    """
    from . import report as formats

    if not path.is_dir():
        fail(f"{path} is not a folder", EXIT_USAGE)
    if as_json and output not in {None, CheckFormat.json}:
        fail("give --json or --format, not both", EXIT_USAGE)
    chosen = CheckFormat.json if as_json else output or CheckFormat.table
    result = audit(path)
    if not result.services:
        fail(
            f"no service found in {path.resolve()} (no code, Dockerfile, chart or manifests)",
            EXIT_USAGE,
        )
    if chosen is CheckFormat.json:
        typer.echo(json.dumps(formats.as_json(result), indent=2, ensure_ascii=False))
    elif chosen is CheckFormat.sarif:
        typer.echo(json.dumps(formats.as_sarif(result), indent=2, ensure_ascii=False))
    elif console.stdout_is_terminal():
        formats.print_table(result, console.out())
    else:
        typer.echo("\n".join(formats.plain_lines(result)))
    raise typer.Exit(0 if result.passed else EXIT_FAILED)
