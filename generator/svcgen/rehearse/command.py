"""`svcgen rehearse`: the typer glue (options, --env, --env-file); run.py rehearses."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..console import parse_data


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (dotenv style: `#` comments, blank lines, `export `, quoted values)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise typer.BadParameter(f"cannot read {path}: {error}") from error
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise typer.BadParameter(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[key] = value
    return found


def rehearse(
    path: Annotated[
        Path, typer.Argument(help="The generated project (its .venv installed)")
    ] = Path(),
    values: Annotated[
        list[Path] | None,
        typer.Option("--values", "-f", metavar="FILE", help="Helm values file (repeatable)"),
    ] = None,
    sets: Annotated[
        list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="Helm --set (repeatable)")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            "-e",
            metavar="KEY=VALUE",
            help="Replace a container variable, e.g. an in-cluster DATABASE_URL (repeatable)",
        ),
    ] = None,
    env_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--env-file",
            metavar="FILE",
            help="KEY=VALUE lines, as --env (repeatable; --env wins): e.g. the values of an "
            "external or existing Secret the chart does not render",
        ),
    ] = None,
    probe_seconds: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="Seconds of liveness and readiness probing"),
    ] = 3.0,
    release: Annotated[
        str | None, typer.Option(metavar="NAME", help="Helm release name (default: the chart's)")
    ] = None,
    namespace: Annotated[
        str, typer.Option(metavar="NAME", help="Namespace to render into")
    ] = "default",
    image: Annotated[
        bool,
        typer.Option(
            "--image",
            help="Run the built image with Docker or Podman (default: the project's .venv "
            "standing in for it, under bubblewrap)",
        ),
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option(
            metavar="CLI",
            help="podman, docker or a path (implies --image; default: $SVCGEN_ENGINE, else "
            "podman, else docker)",
        ),
    ] = None,
    build: Annotated[
        bool,
        typer.Option(
            "--build",
            help="Build the Dockerfile first, as the image the chart names (implies --image)",
        ),
    ] = False,
) -> None:
    """Run the chart's pods locally as a kubelet would: hooks, probes, termination."""
    from .engine import EngineError, find_engine  # only when rehearsing
    from .run import Options, run_rehearsal

    options = Options(
        path=path,
        values=list(values or []),
        sets=list(sets or []),
        env={
            **{k: v for file in env_files or [] for k, v in read_env_file(file).items()},
            **parse_data(env, "--env"),
        },
        probe_seconds=probe_seconds,
        release=release,
        namespace=namespace,
        image=image or build or engine is not None,
        engine=engine,
        build=build,
    )
    if options.image:
        try:
            find_engine(engine)
        except EngineError as error:
            raise typer.BadParameter(
                f"{error}; install Docker or Podman, name one with --engine, or rehearse "
                "without --image (the project's .venv stands in for the image)",
                param_hint="--engine",
            ) from None
    print(f"svcgen rehearse {path.resolve()}", flush=True)
    report = run_rehearsal(options, sys.stdout)
    if not report.ok:
        raise typer.Exit(1)
