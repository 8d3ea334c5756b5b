"""The `svcgen` command: new, update, check, options."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from . import __version__, checks, distribution, generating, rehearse, updating
from .questionnaire import InvalidAnswer, Questionnaire, display, questionnaire
from .template import load_config, template_source

app = typer.Typer(
    name="svcgen",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Generate production-ready, cloud-native Python services, keep them up to date, "
    "and audit any service repo against the cloud-native checklist.",
)

#: Exit codes: 1 failed or refused, 2 bad input, 130 interrupted (Ctrl-C).
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def _out() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    _err().print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _stdout_is_terminal() -> bool:
    """A person reads the output (a table), not a pipe or a log (whole plain lines)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _parse_data(items: list[str] | None) -> dict[str, str]:
    data: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--data expects KEY=VALUE, got {item!r}", EXIT_USAGE)
        data[key.strip()] = value
    return data


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


# --- new --------------------------------------------------------------------------------


def _summary(
    q: Questionnaire, answers: dict[str, Any], dest: Path, files: list[str], *, list_files: bool
) -> None:
    """One line per answer, then the files: counted (they fit 80x24 above the confirmation),
    listed with --dry-run."""
    secret = {question.name for question in q.questions if question.secret}
    out = _out()
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
    out.print(table)
    if list_files:
        out.print(f"[bold]{len(files)} files[/] to create in {escape(str(dest))}:")
        for file in files:
            out.print(f"  {escape(file)}")
    else:
        out.print(f"[bold]{len(files)} files[/] to create (`svcgen new --dry-run` lists them)")


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
    _out().print(
        f"\n[bold green]Created[/] {escape(str(dest))}\n\n"
        "Next steps (the quick start of its README.md):\n"
        f"  cd {escape(str(shown))}\n{lines}\n"
        'Commit it as generated: git add -A && git commit -m "Generated with svcgen"'
    )


@app.command()
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
    interactive = not defaults and _stdin_is_terminal()
    given: dict[str, Any] = dict(_parse_data(data))
    if framework is not None:
        given["framework"] = framework
    if service:
        if "services" in given:
            fail("give services with --service or --data services=..., not both", EXIT_USAGE)
        given["services"] = list(service)

    def refuse_occupied(path: Path) -> None:
        if path.exists() and not path.is_dir():
            fail(f"{path} exists and is not a folder", EXIT_USAGE)
        if path.exists() and not generating.is_empty_dir(path) and not force and not dry_run:
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
            _out().print(
                f"[bold]svcgen {__version__}[/]: {q.count_to_ask(given)} questions from "
                "copier.yml. Enter accepts the default; Ctrl-C quits and creates nothing.\n"
            )
        if not interactive and not defaults:
            _err().print("stdin is not a terminal: questions not given take their defaults")
        try:
            answers = q.resolve(given, wizard)
        except InvalidAnswer as error:
            fail(f"invalid {error.name}: {error.rule}", EXIT_USAGE)
        if dest is None:
            dest = Path.cwd() / str(answers.get("project_slug", "project"))
            refuse_occupied(dest)
        with generating.staging(dest, near=not dry_run) as target:
            try:
                generating.render(source, target, answers, vcs_ref=vcs_ref, skip_tasks=dry_run)
            except ValueError as error:  # Copier's own validation
                fail(str(error), EXIT_USAGE)
            except Exception as error:  # a template bug, a failing task, a full disk...
                fail(f"generation failed: {type(error).__name__}: {error}")
            files = generating.files_of(target)
            _summary(q, answers, dest, files, list_files=dry_run)
            if dry_run:
                _out().print("[yellow]Dry run:[/] nothing was created.")
                return
            if wizard is not None and not wizard.confirm(f"Create {_shown(dest)}?"):
                _out().print("Nothing was created.")
                return
            if _is_packaged(source):
                distribution.record_source(target)
            lock_problem = generating.lock(target)
            generating.move_into_place(target, dest)
    except KeyboardInterrupt:
        _err().print("\n[yellow]Interrupted:[/] nothing was created.")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OSError as error:  # the destination's folder is read-only, the disk is full...
        fail(f"cannot create {dest}: {error}")
    if lock_problem:
        _err().print(f"[yellow]warning:[/] {escape(lock_problem)}")
    _next_steps(dest)


# --- update -----------------------------------------------------------------------------


class ConflictMode(StrEnum):
    inline = "inline"
    rej = "rej"


def _typed_update_data(
    data: dict[str, str], answers: dict[str, Any], path: Path, vcs_ref: str | None
) -> dict[str, Any]:
    """--data values typed by the template's questions (Copier gets real lists and ints)."""
    if not data:
        return {}
    source = str(answers.get("_src_path", ""))
    try:
        q = questionnaire(load_config(source, vcs_ref), path, "update")
    except (OSError, ValueError):
        return dict(data)
    known = {question.name for question in q.questions}
    typed: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in known:
            fail(
                f"invalid {key}: is not a question of this template (see `svcgen options`)",
                EXIT_USAGE,
            )
        try:
            typed[key] = q.check(q[key], raw, {**answers, **typed})
        except InvalidAnswer as error:
            fail(f"invalid {error.name}: {error.rule}", EXIT_USAGE)
    return typed


@app.command()
def update(
    path: Annotated[Path, typer.Argument(help="The generated repo.")] = Path("."),
    conflict: Annotated[
        ConflictMode,
        typer.Option("--conflict", help="Mark conflicts inline (<<<<<<<) or in .rej files."),
    ] = ConflictMode.inline,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            "-d",
            metavar="KEY=VALUE",
            help="Change an answer, e.g. --data services=postgres,redis.",
        ),
    ] = None,
    defaults: Annotated[
        bool,
        typer.Option("--defaults", "--yes", "-y", help="Keep every other answer; ask nothing."),
    ] = False,
    vcs_ref: Annotated[
        str | None,
        typer.Option(
            "--vcs-ref",
            metavar="REF",
            help="Template git ref to update to (default: newest release tag).",
        ),
    ] = None,
) -> None:
    """Bring a generated repo up to date with its template (Copier's update).

    Refuses when the git tree has uncommitted changes, the repo was not generated by
    this template, or --data would rename it (project_slug, package_name). Your edits
    are kept; where you and the template changed the same lines, conflicts are marked
    and listed. Exits 0 once updated, conflicts or not.
    """
    path = path.expanduser().absolute()
    interactive = not defaults and _stdin_is_terminal()
    try:
        answers = updating.read_answers(path)
        typed = _typed_update_data(_parse_data(data), answers, path, vcs_ref)
        updating.refuse_rename(answers, typed)
        updating.ensure_clean(path)
        outcome = updating.update(
            path, data=typed, conflict=conflict.value, interactive=interactive, vcs_ref=vcs_ref
        )
    except typer.Exit:
        raise
    except updating.Refused as error:
        fail(f"refusing to update: {error}")
    except KeyboardInterrupt:
        _err().print("\n[yellow]Interrupted.[/] Check `git status` before retrying.")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as error:  # Copier's own refusals, git failures, template bugs...
        fail(f"update failed: {error}")
    out = _out()
    before, after = outcome.answers_before.get("_commit"), outcome.answers_after.get("_commit")
    out.print(f"[bold green]Updated[/] {escape(str(path))}: template {before} → {after}")
    changed = {
        k: v
        for k, v in outcome.answers_after.items()
        if not k.startswith("_") and outcome.answers_before.get(k) != v
    }
    for key, value in changed.items():
        old = display(outcome.answers_before.get(key))
        out.print(f"  {key}: {escape(old)} → {escape(display(value))}")
    if outcome.conflicts:
        kind = "conflict markers" if conflict is ConflictMode.inline else ".rej files"
        out.print(
            f"[bold yellow]{len(outcome.conflicts)} file(s) with {kind}[/] — resolve, then commit:"
        )
        for file in outcome.conflicts:
            out.print(f"  {escape(file)}")
    else:
        out.print("No conflicts. Review with `git diff`, then commit.")


# --- status -----------------------------------------------------------------------------

STATE_STYLE = {"current": "green", "behind": "yellow", "conflicts": "bold red", "error": "bold red"}


@app.command()
def status(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Generated repos, or folders holding them (default: .).", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Where generated repos stand: template version, newest release, clean tree, conflicts.

    For one repo or a folder of repos: the template version each is on, the newest
    release of its template, whether its git tree is clean, and whether updating would
    conflict (a dry run of the update in a temporary clone; the repo is not touched).
    Exits 0 when every repo is current, 1 when some are behind (or could not be checked),
    2 when no generated repo is found.
    """
    from . import status as fleet  # packaging's import: only when asked

    given = [p.expanduser().absolute() for p in (paths or [Path(".")])]
    for path in given:
        if not path.is_dir():
            fail(f"{path} is not a folder", EXIT_USAGE)
    repos = fleet.find_repos(given)
    if not repos:
        fail(
            f"no generated repo (with {updating.ANSWERS_FILE}) in {', '.join(map(str, given))}",
            EXIT_USAGE,
        )
    results = [fleet.status_of(repo) for repo in repos]
    current = all(r.current for r in results)
    if as_json:
        typer.echo(
            json.dumps({"current": current, "repos": [r.as_dict() for r in results]}, indent=2)
        )
    else:
        table = Table(title="Template status", title_justify="left")
        for column in ("repo", "version", "newest", "tree", "update"):
            table.add_column(column, overflow="fold")
        for r in results:
            tree = {True: "clean", False: "[yellow]changes[/]", None: "-"}[r.clean]
            state = f"[{STATE_STYLE[r.state]}]{r.state}[/]"
            if r.conflicts:
                state += ": " + escape(", ".join(r.conflicts))
            elif r.error:
                state += ": " + escape(r.error)
            table.add_row(escape(r.path), r.version or "-", r.newest or "-", tree, state)
        out = _out()
        out.print(table)
        behind = sum(not r.current for r in results)
        out.print(f"{len(results) - behind} current, {behind} behind or unchecked")
    raise typer.Exit(0 if current else EXIT_FAILED)


# --- check ------------------------------------------------------------------------------


class CheckFormat(StrEnum):
    table = "table"
    json = "json"
    sarif = "sarif"


@app.command()
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
    from .checks import report as formats

    if not path.is_dir():
        fail(f"{path} is not a folder", EXIT_USAGE)
    if as_json and output not in {None, CheckFormat.json}:
        fail("give --json or --format, not both", EXIT_USAGE)
    chosen = CheckFormat.json if as_json else output or CheckFormat.table
    result = checks.audit(path)
    if not result.services:
        fail(
            f"no service found in {path.resolve()} (no code, Dockerfile, chart or manifests)",
            EXIT_USAGE,
        )
    if chosen is CheckFormat.json:
        typer.echo(json.dumps(formats.as_json(result), indent=2, ensure_ascii=False))
    elif chosen is CheckFormat.sarif:
        typer.echo(json.dumps(formats.as_sarif(result), indent=2, ensure_ascii=False))
    elif _stdout_is_terminal():
        formats.print_table(result, _out())
    else:
        typer.echo("\n".join(formats.plain_lines(result)))
    raise typer.Exit(0 if result.passed else EXIT_FAILED)


# --- options ----------------------------------------------------------------------------


@app.command()
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
    out = _out()
    out.print("[bold]Questions[/] (answer with --data KEY=VALUE)")
    for row in rows:
        values = ", ".join(str(c["value"]) for c in row["choices"])
        kind = f"{row['type']}, many" if row["multiselect"] else str(row["type"])
        default = display(row["resolved_default"] if row["name"] in resolved else row["default"])
        if row["derived"]:
            default += " (derived)"
        head = f"\n[bold cyan]{row['name']}[/] ({kind}) default: {escape(default)}"
        if values:
            head += f"; one of: {escape(values)}"
        out.print(head)
        out.print(Padding(escape(str(row["help"])), (0, 0, 0, 4)))


# More commands register below, one line each (e.g. `app.command()(rehearse.rehearse)`).
app.command()(rehearse.rehearse)
