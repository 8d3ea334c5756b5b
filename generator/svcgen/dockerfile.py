"""The one Dockerfile model of svcgen: instructions, stages, and what the final stage runs.

`Dockerfile.parse` reads the instructions (continuations joined, comments dropped, each with
its line) and knows the stages (`FROM <base> AS <name>`, a stage built on another). Two
readers use it:

- `svcgen check` (check/image.py, check/code.py) judges the instructions as written:
  `substitute(..., keep_unknown=True)` leaves a variable it cannot resolve as it stands, so a
  base image from a build argument shows as `python:${PY}`.
- `svcgen rehearse` needs what a container runtime gets from the image (`parse_dockerfile`):
  the final stage's ENTRYPOINT and CMD (exec or shell form), ENV (ARG/ENV substituted the
  way the builder does: unknown is empty), WORKDIR, USER and COPY destinations. Kubernetes'
  `command`/`args` are then combined with them by `effective_command`.

Not `dockerfile-parse` (PyPI): it would give the joined lines and parent images (the ~30
lines of `logical_lines` and `from_clause`), but neither the stage chain nor ENTRYPOINT/
WORKDIR/USER/COPY, and its ENV does not carry over from a `FROM <stage>` parent; one more
runtime dependency of the CLI for the least of the work.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Dockerfile",
    "DockerfileError",
    "Image",
    "Instruction",
    "effective_command",
    "parse_dockerfile",
    "substitute",
]

#: What an image without ENV PATH gets (the value Docker and containerd use).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?(?P<op>[-+])(?P<word>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class DockerfileError(ValueError):
    """The Dockerfile can't be read the way the rehearsal needs."""


@dataclass
class Image:
    """The runtime-relevant settings of the final stage."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str | None = None
    #: destinations of the final stage's COPY/ADD, absolute
    copies: list[str] = field(default_factory=list)

    @property
    def uid(self) -> int | None:
        """USER's numeric uid, when numeric (a name needs the image's /etc/passwd)."""
        if self.user is None:
            return None
        name = self.user.partition(":")[0]
        return int(name) if name.isdigit() else None

    @property
    def gid(self) -> int | None:
        if self.user is None or ":" not in self.user:
            return None
        group = self.user.partition(":")[2]
        return int(group) if group.isdigit() else None


@dataclass
class Instruction:
    keyword: str  # upper case
    args: str
    line: int  # where it starts


def from_clause(instruction: Instruction) -> tuple[str, str | None]:
    """`FROM [--platform=...] <base> [AS <name>]`: the base as written and the stage's name."""
    words = [w for w in instruction.args.split() if not w.startswith("--")]
    base = words[0] if words else ""
    name = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else None
    return base, name


@dataclass
class Dockerfile:
    path: str
    instructions: list[Instruction]

    @classmethod
    def parse(cls, path: str, text: str) -> Dockerfile:
        instructions: list[Instruction] = []
        for number, full in logical_lines(text):
            keyword, _, args = full.partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip(), number))
        return cls(path, instructions)

    @property
    def stages(self) -> list[list[Instruction]]:
        """The instructions of each stage, its FROM first."""
        stages: list[list[Instruction]] = []
        for instruction in self.instructions:
            if instruction.keyword == "FROM":
                stages.append([])
            if stages:
                stages[-1].append(instruction)
        return stages

    def final_stage(self) -> list[Instruction]:
        """The last stage, preceded by the stages it builds on (`FROM <stage>`): it
        inherits their USER and HEALTHCHECK."""
        stages = self.stages
        names = {from_clause(stage[0])[1]: index for index, stage in enumerate(stages)}
        chain: list[Instruction] = []
        index, seen = len(stages) - 1, set()
        while index >= 0 and index not in seen:
            seen.add(index)
            chain = stages[index] + chain
            parent = names.get(from_clause(stages[index][0])[0].lower())
            if parent is None or parent >= index:
                break
            index = parent
        return chain

    def global_args(self) -> dict[str, str]:
        """The ARGs before the first FROM, as written (quotes dropped)."""
        args: dict[str, str] = {}
        for instruction in self.instructions:
            if instruction.keyword == "FROM":
                break
            if instruction.keyword == "ARG":
                name, _, value = instruction.args.partition("=")
                args[name.strip()] = value.strip().strip("\"'")
        return args


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Instructions with continuation lines joined and comments dropped, each with the
    number of the line it starts on."""
    escape = "\\"
    first = text.splitlines()[:1]
    if first and (directive := re.match(r"#\s*escape\s*=\s*(\S)", first[0])):
        escape = directive.group(1)
    lines: list[tuple[int, str]] = []
    current, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are ignored
        if not current:
            start = number
        if stripped.endswith(escape):
            current += stripped[: -len(escape)] + " "
            continue
        lines.append((start, current + stripped))
        current = ""
    if current.strip():
        lines.append((start, current.strip()))
    return lines


def substitute(value: str, variables: Mapping[str, str], *, keep_unknown: bool = False) -> str:
    """`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}` as the Dockerfile builder expands them.

    With `keep_unknown` (what check reads) a variable that is unset or empty stays as
    written, its `:-`/`:+` word unused: the line shows what could not be resolved.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        current = variables.get(name, "")
        if keep_unknown:
            return current or match.group(0)
        op = match.group("op")
        if op == "-":
            return current or match.group("word")
        if op == "+":
            return match.group("word") if current else ""
        return current

    if keep_unknown:
        return _VARIABLE.sub(replace, value)
    return _VARIABLE.sub(replace, value.replace("\\$", "\0")).replace("\0", "$")


def _command(rest: str) -> list[str]:
    """Exec form (JSON array) as is; shell form through `/bin/sh -c`."""
    if rest.startswith("["):
        try:
            parsed = json.loads(rest)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return list(parsed)
    return ["/bin/sh", "-c", rest]


def _key_values(rest: str) -> list[tuple[str, str]]:
    """`ENV A=1 B="two words"` or the legacy `ENV A 1`."""
    parts = shlex.split(rest, posix=True)
    if parts and "=" not in parts[0]:
        return [(parts[0], rest.split(None, 1)[1] if len(parts) > 1 else "")]
    pairs = []
    for part in parts:
        key, _, value = part.partition("=")
        pairs.append((key, value))
    return pairs


def parse_dockerfile(path: Path) -> Image:
    """The final stage of `path`, with ENV carried from the stage it is built `FROM`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DockerfileError(f"cannot read {path}: {error.strerror}") from None
    stages: dict[str, Image] = {}
    args: dict[str, str] = {}  # global ARGs (before the first FROM)
    image: Image | None = None
    stage_args: dict[str, str] = {}
    cmd_set = False
    for step in Dockerfile.parse(str(path), text).instructions:
        instruction, rest = step.keyword, step.args
        if instruction == "FROM":
            written, name = from_clause(step)
            parent = stages.get(substitute(written, args).lower())
            image = Image(
                entrypoint=list(parent.entrypoint) if parent else [],
                cmd=list(parent.cmd) if parent else [],
                env=dict(parent.env) if parent else {"PATH": DEFAULT_PATH},
                workdir=parent.workdir if parent else "/",
                user=parent.user if parent else None,
            )
            if name:
                stages[name] = image
            stage_args = {}
            cmd_set = False
            continue
        if image is None:
            if instruction == "ARG":
                for key, value in _key_values(rest):
                    args[key] = value
            continue
        variables = {**args, **stage_args, **image.env}
        if instruction == "ARG":
            for key, value in _key_values(rest):
                stage_args[key] = substitute(value, variables) if value else args.get(key, "")
        elif instruction == "ENV":
            for key, value in _key_values(rest):
                image.env[key] = substitute(value, {**variables, **image.env})
        elif instruction == "WORKDIR":
            workdir = substitute(rest, variables)
            image.workdir = workdir if workdir.startswith("/") else f"{image.workdir}/{workdir}"
        elif instruction in {"COPY", "ADD"}:
            words = _command(rest) if rest.startswith("[") else rest.split()
            words = [w for w in words if not w.startswith("--")]
            if len(words) >= 2:
                dest = substitute(words[-1], variables)
                if not dest.startswith("/"):
                    dest = f"{image.workdir.rstrip('/')}/{dest}"
                image.copies.append(os.path.normpath(dest))
        elif instruction == "USER":
            image.user = substitute(rest, variables)
        elif instruction == "ENTRYPOINT":
            image.entrypoint = _command(rest)
            if not cmd_set:
                image.cmd = []  # Docker: ENTRYPOINT resets a CMD inherited from the base
        elif instruction == "CMD":
            image.cmd = _command(rest)
            cmd_set = True
    if image is None:
        raise DockerfileError(f"{path} has no FROM instruction")
    image.env.setdefault("PATH", DEFAULT_PATH)
    return image


def effective_command(
    image: Image, command: Sequence[str] | None, args: Sequence[str] | None
) -> list[str]:
    """What Kubernetes runs: `command` replaces ENTRYPOINT (and drops CMD), `args` replaces CMD."""
    if command:
        return [*command, *(args or [])]
    if args:
        return [*image.entrypoint, *args]
    return [*image.entrypoint, *image.cmd]
