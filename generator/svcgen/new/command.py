"""`svcgen new` and `svcgen options`: the typer glue of the generator.

The questions come from copier.yml (svcgen/questionnaire.py), the project is rendered by
Copier in a staging folder (render.py), the wizard asks them on a terminal (wizard.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from .. import __version__, distribution
from ..console import EXIT_INTERRUPTED, EXIT_USAGE, err, fail, out, parse_data, stdin_is_terminal
from ..questionnaire import InvalidAnswer, Questionnaire, display, questionnaire
from ..template import load_config, template_source
from . import render


def _load(
    template: str | None, vcs_ref: str | None, dest: Path, operation: str = "copy"
) -> tuple[str, Questionnaire]:
    source = template or template_source()
    try:
        config = load_config(source, vcs_ref)
    except (OSError, ValueError) as error:
        fail(f"cannot read the template's questions: {error}", EXIT_USAGE)
    return source, questionnaire(config, dest, operation)


def _is_packaged(source: str) -> bool:
    """Whether `source` is the template inside the installed package (not a git checkout)."""
    packaged = distribution.packaged_template()
    return packaged is not None and Path(source).resolve() == packaged


def _complete(name: str) -> Any:
    """Shell completion for an option from the choices of copier.yml's question `name`."""

    def complete(incomplete: str) -> list[str]:
        try:
            q = questionnaire(load_config(template_source()))
            values = [str(c.value) for c in q.choices(q[name], {})]
        except (OSError, ValueError, KeyError):
            return []
        return [v for v in values if v.startswith(incomplete)]

    return complete


def _summary(
    q: Questionnaire, answers: dict[str, Any], dest: Path, files: list[str], *, list_files: bool
) -> None:
    """One line per answer, then the files: counted (they fit 80x24 above the confirmation),
    listed with --dry-run."""
    secret = {question.name for question in q.questions if question.secret}
    screen = out()
    table = Table(
        title=f"Project in {escape(str(_shown(dest)))}",
        show_header=False,
        title_justify="left",
        box=None,
    )
    table.add_column("question", style="cyan", no_wrap=True)
    table.add_column("answer", overflow="fold")
    for name, value in answers.items():
        table.add_row(name, "********" if name in secret else escape(display(value)))
    screen.print(table)
    if list_files:
        screen.print(f"[bold]{len(files)} files[/] to create in {escape(str(dest))}:")
        for file in files:
            screen.print(f"  {escape(file)}")
    else:
        screen.print(f"[bold]{len(files)} files[/] to create (`svcgen new --dry-run` lists them)")


def quick_start(project: Path) -> list[str]:
    """The commands of the generated README's quick start (its first ```sh block)."""
    try:
        text = (project / "README.md").read_text(encoding="utf-8")
    except OSError:
        return []
    _, found, section = text.partition("\n## Quick start\n")
    block = section.partition("```sh\n")[2].partition("```")[0] if found else ""
    return [line for line in block.splitlines() if line.strip()]


def _shown(path: Path) -> Path:
    """`path` relative to the working folder when it is inside it (shorter on a screen)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _next_steps(dest: Path) -> None:
    shown = _shown(dest)
    steps = quick_start(dest) or ["make install"]
    lines = "".join(f"  {escape(step)}\n" for step in steps)
    out().print(
        f"\n[bold green]Created[/] {escape(str(dest))}\n\n"
        "Next steps (the quick start of its README.md):\n"
        f"  cd {escape(str(shown))}\n{lines}\n"
        'Commit it as generated: git add -A && git commit -m "Generated with svcgen"'
    )


def new(
    dest: Annotated[
        Path | None,
        typer.Argument(help="Folder to create (default: ./<project_slug>).", show_default=False),
    ] = None,
    framework: Annotated[
        str | None,
        typer.Option(
            "--framework",
            "-f",
            metavar="NAME",
            help="Web framework (see `svcgen options`).",
            autocompletion=_complete("framework"),
        ),
    ] = None,
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service",
            "-s",
            metavar="NAME",
            help="A backing service to attach; repeat for more.",
            autocompletion=_complete("services"),
        ),
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data", "-d", metavar="KEY=VALUE", help="Answer any question; repeat for more."
        ),
    ] = None,
    defaults: Annotated[
        bool,
        typer.Option(
            "--defaults",
            "--yes",
            "-y",
            help="Take the default for every question not given; ask nothing.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show the answers and the files to create, create nothing."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Generate into a folder that is not empty (template files replace yours).",
        ),
    ] = False,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            metavar="SOURCE",
            help="Template: a folder or git URL (default: $SVCGEN_TEMPLATE or svcgen's own).",
            show_default=False,
        ),
    ] = None,
    vcs_ref: Annotated[
        str | None,
        typer.Option(
            "--vcs-ref",
            metavar="REF",
            help="Template git ref (default: newest release tag, else HEAD with local changes).",
        ),
    ] = None,
) -> None:
    """Generate a new service: a wizard, or flags for scripts.

    Questions, help, choices, defaults and rules come from the template's copier.yml.
    When stdin is not a terminal (or with --defaults) nothing is asked: questions not
    given take their defaults. Invalid input exits 2 with the rule it broke; Ctrl-C
    exits 130; either way nothing is created.
    """
    interactive = not defaults and stdin_is_terminal()
    given: dict[str, Any] = dict(parse_data(data))
    if framework is not None:
        given["framework"] = framework
    if service:
        if "services" in given:
            fail("give services with --service or --data services=..., not both", EXIT_USAGE)
        given["services"] = list(service)

    def refuse_occupied(path: Path) -> None:
        if path.exists() and not path.is_dir():
            fail(f"{path} exists and is not a folder", EXIT_USAGE)
        if path.exists() and not render.is_empty_dir(path) and not force and not dry_run:
            fail(f"{path} is not empty: choose another folder or pass --force", EXIT_USAGE)

    if dest is not None:
        dest = dest.expanduser().absolute()
        refuse_occupied(dest)
    try:
        source, q = _load(template, vcs_ref, dest or Path.cwd() / "project")
        wizard = None
        if interactive:
            from .wizard import Wizard  # prompt_toolkit is slow to import: only when asking

            wizard = Wizard(q)
            out().print(
                f"[bold]svcgen {__version__}[/]: {q.count_to_ask(given)} questions from "
                "copier.yml. Enter accepts the default; Ctrl-C quits and creates nothing.\n"
            )
        if not interactive and not defaults:
            err().print("stdin is not a terminal: questions not given take their defaults")
        try:
            answers = q.resolve(given, wizard)
        except InvalidAnswer as error:
            fail(f"invalid {error.name}: {error.rule}", EXIT_USAGE)
        if dest is None:
            dest = Path.cwd() / str(answers.get("project_slug", "project"))
            refuse_occupied(dest)
        with render.staging(dest, near=not dry_run) as target:
            try:
                render.render(source, target, answers, vcs_ref=vcs_ref, skip_tasks=dry_run)
            except ValueError as error:  # Copier's own validation
                fail(str(error), EXIT_USAGE)
            except Exception as error:  # a template bug, a failing task, a full disk...
                fail(f"generation failed: {type(error).__name__}: {error}")
            files = render.files_of(target)
            _summary(q, answers, dest, files, list_files=dry_run)
            if dry_run:
                out().print("[yellow]Dry run:[/] nothing was created.")
                return
            if wizard is not None and not wizard.confirm(f"Create {_shown(dest)}?"):
                out().print("Nothing was created.")
                return
            if _is_packaged(source):
                distribution.record_source(target)
            lock_problem = render.lock(target)
            render.move_into_place(target, dest)
    except KeyboardInterrupt:
        err().print("\n[yellow]Interrupted:[/] nothing was created.")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OSError as error:  # the destination's folder is read-only, the disk is full...
        fail(f"cannot create {dest}: {error}")
    if lock_problem:
        err().print(f"[yellow]warning:[/] {escape(lock_problem)}")
    _next_steps(dest)


def options(
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            metavar="SOURCE",
            help="Template (default: svcgen's own).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the template's questions, their choices and defaults (from copier.yml)."""
    _, q = _load(template, None, Path.cwd() / "project")
    try:
        resolved = q.resolve({})  # every default, derived ones computed from the others
    except InvalidAnswer:
        resolved = {}
    rows = []
    for question in q.questions:
        if question.when is False:  # computed (e.g. the service catalog): not an option
            continue
        choices = q.choices(question, resolved)
        rows.append(
            {
                "name": question.name,
                "type": question.type,
                "multiselect": question.multiselect,
                "default": question.default,
                "resolved_default": resolved.get(question.name),
                "derived": isinstance(question.default, str) and "{" in question.default,
                "choices": [{"label": c.label, "value": c.value} for c in choices],
                "help": question.help,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    # A list, not a table: it reads the same at 80 columns as at 200 (no name is ever split).
    screen = out()
    screen.print("[bold]Questions[/] (answer with --data KEY=VALUE)")
    for row in rows:
        values = ", ".join(str(c["value"]) for c in row["choices"])
        kind = f"{row['type']}, many" if row["multiselect"] else str(row["type"])
        default = display(row["resolved_default"] if row["name"] in resolved else row["default"])
        if row["derived"]:
            default += " (derived)"
        head = f"\n[bold cyan]{row['name']}[/] ({kind}) default: {escape(default)}"
        if values:
            head += f"; one of: {escape(values)}"
        screen.print(head)
        screen.print(Padding(escape(str(row["help"])), (0, 0, 0, 4)))
