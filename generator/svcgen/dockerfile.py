"""What a Dockerfile's final stage tells a container runtime: command, environment, user, workdir.

Only what `svcgen rehearse` needs to stand in for the image: the last stage's ENTRYPOINT and
CMD (exec or shell form), ENV (with ARG/ENV substitution), WORKDIR and USER. Kubernetes'
`command`/`args` are then combined with them by `effective_command`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DockerfileError", "Image", "effective_command", "parse_dockerfile"]

#: What an image without ENV PATH gets (the value Docker and containerd use).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
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


def substitute(value: str, variables: Mapping[str, str]) -> str:
    """`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}` as the Dockerfile builder expands them."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        current = variables.get(name, "")
        op = match.group("op")
        if op == "-":
            return current or match.group("word")
        if op == "+":
            return match.group("word") if current else ""
        return current

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
    for _, line in logical_lines(text):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            base = substitute(words[0], args) if words else ""
            parent = stages.get(base.lower())
            image = Image(
                entrypoint=list(parent.entrypoint) if parent else [],
                cmd=list(parent.cmd) if parent else [],
                env=dict(parent.env) if parent else {"PATH": DEFAULT_PATH},
                workdir=parent.workdir if parent else "/",
                user=parent.user if parent else None,
            )
            if len(words) >= 3 and words[1].upper() == "AS":
                stages[words[2].lower()] = image
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
