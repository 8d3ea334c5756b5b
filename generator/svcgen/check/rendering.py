"""Templates are judged as what they render, never on placeholder text.

A Copier template (copier.yml) is rendered with its defaults by Copier itself, without
running its tasks and refusing unsafe features (Jinja extensions); a cookiecutter
template (cookiecutter.json) with its defaults in a sandboxed Jinja environment. Anything
else holding placeholders in its paths is reported as an unrendered template.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..template import read_config

_PLACEHOLDER_PATH = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")


@dataclass
class Template:
    """A template found in a repository, and where its rendering is (if it rendered)."""

    engine: str  # "Copier", "cookiecutter" or "Jinja"
    rendered: Path | None
    note: str
    sources: dict[str, str] = field(default_factory=dict)  # rendered path -> template file
    root: Path | None = None  # the template's repository

    def source(self, rendered: str, line: int | None) -> tuple[str, int | None]:
        """The template file a rendered file came from, and the line there that reads
        like the rendered one (None when placeholders changed it beyond recognition)."""
        source = self.sources.get(rendered)
        if source is None or self.rendered is None:
            return rendered, line
        if line is None or self.root is None:
            return source, None
        try:
            wanted = (self.rendered / rendered).read_text(encoding="utf-8").splitlines()[line - 1]
            lines = (self.root / source).read_text(encoding="utf-8").splitlines()
        except (OSError, IndexError, UnicodeDecodeError):
            return source, None
        wanted = wanted.strip()
        same = [i + 1 for i, text in enumerate(lines) if text.strip() == wanted and wanted]
        return source, min(same, key=lambda n: abs(n - line)) if same else None


def _source_map(root: Path, template_root: Path, rendered: Path, suffix: str) -> dict[str, str]:
    """Which template file produced each rendered file (placeholders matched loosely)."""
    patterns = []
    for path in sorted(template_root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(template_root).as_posix()
        name = rel.removesuffix(suffix) if suffix else rel
        parts = _PLACEHOLDER_PATH.split(name)
        holes = _PLACEHOLDER_PATH.findall(name)
        pattern = "".join(
            re.escape(part) + ("[^/]*" if i < len(holes) and holes[i].startswith("{{") else "")
            for i, part in enumerate(parts)
        )
        patterns.append((re.compile(pattern + "$"), path.relative_to(root).as_posix()))
    found = {}
    for path in rendered.rglob("*"):
        if path.is_file():
            rel = path.relative_to(rendered).as_posix()
            for regex, source in patterns:
                if regex.match(rel):
                    found[rel] = source
                    break
    return found


def _copier(root: Path, config: Path, out: Path) -> Template:
    import copier  # slow to import: only for templates

    try:
        settings = read_config(root, str(config))  # with its `!include`s, as Copier reads it
        subdir = str(settings.get("_subdirectory", "") or "")
        suffix = str(settings.get("_templates_suffix", ".jinja"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copier.run_copy(
                str(root),
                str(out),
                defaults=True,
                unsafe=False,
                skip_tasks=True,
                quiet=True,
                vcs_ref="HEAD" if (root / ".git").exists() else None,
            )
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return Template("Copier", None, f"not rendered with its defaults ({first[:160]})")
    template_root = root / subdir if subdir else root
    sources = _source_map(root, template_root, out, suffix)
    return Template("Copier", out, "rendered with its defaults (tasks not run)", sources, root)


def _cookiecutter_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment()
    context: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, list):
            value = value[0] if value else ""
        if isinstance(value, str) and not key.startswith("_"):
            with suppress(Exception):
                value = env.from_string(value).render(cookiecutter=context)
        context[key] = value
    return context


def _cookiecutter(root: Path, config: Path, out: Path) -> Template:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        return Template("cookiecutter", None, f"cookiecutter.json unreadable ({error})")
    tops = [d for d in root.iterdir() if d.is_dir() and "cookiecutter" in d.name and "{{" in d.name]
    if not tops:
        return Template("cookiecutter", None, "no {{cookiecutter.*}} folder to render")
    context = _cookiecutter_defaults(raw)
    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
    verbatim = [str(p) for p in raw.get("_copy_without_render", [])]
    failed, sources = 0, {}
    for path in sorted(tops[0].rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(tops[0]).as_posix()
        try:
            target = env.from_string(rel).render(cookiecutter=context)
            data = path.read_bytes()
            if b"\0" not in data[:4096] and not any(PurePosixPath(rel).match(g) for g in verbatim):
                text = env.from_string(data.decode("utf-8")).render(cookiecutter=context)
                data = text.encode("utf-8")
        except Exception:
            failed += 1
            continue
        if not target.strip() or target.endswith("/"):
            continue
        dest = out / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        sources[target] = path.relative_to(root).as_posix()
    note = "rendered with its defaults (hooks not run)"
    if failed:
        note += f"; {failed} file(s) did not render and were left out"
    return Template("cookiecutter", out, note, sources, root)


def placeholder_folders(root: Path) -> list[str]:
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and ("{{" in p.name or "{%" in p.name) and not p.name.startswith(".")
    )


@contextmanager
def rendered(root: Path) -> Iterator[Template | None]:
    """The repository's template, rendered into a temporary folder for the audit."""
    configs = [root / n for n in ("copier.yml", "copier.yaml") if (root / n).is_file()]
    copier_yml = configs[0] if configs else None
    cookiecutter = root / "cookiecutter.json"
    if copier_yml is None and not cookiecutter.is_file():
        holes = placeholder_folders(root)
        yield Template("Jinja", None, f"placeholders in {', '.join(holes)}") if holes else None
        return
    box = Path(tempfile.mkdtemp(prefix="svcgen-check-"))
    try:
        out = box / root.name
        if copier_yml is not None:
            yield _copier(root, copier_yml, out)
        else:
            yield _cookiecutter(root, cookiecutter, out)
    finally:
        shutil.rmtree(box, ignore_errors=True)
