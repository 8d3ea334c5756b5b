"""The real image: size with a layer breakdown, and build times (cold, warm, after a source
change), per framework, with the engine scripts/install-engine.sh provides (or $SVCGEN_ENGINE).

Cold is `build --no-cache` (no layer reused; uv's cache mount may be warm, as on a CI builder
that keeps it); warm is the same build again, nothing changed; "source change" edits one file
under src/, so only the layers from `COPY src` on are rebuilt. The base images are the local
stand-ins (scripts/install_engine.py): their size is this machine's, not Docker Hub's.
The images and the layer cache these builds leave are removed afterwards. Run alone:
`.venv/bin/python bench/image.py`, or `make bench BENCH_ARGS="--only image"` to update only this
section of bench/results.md.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from harness import REPO, Row, run_section
from svcgen.rehearse.engine import Engine, find_engine

from tests.support import Project

TOOLS_PODMAN = REPO / ".tools" / "bin" / "podman"


def engine() -> Engine:
    return find_engine(str(TOOLS_PODMAN) if TOOLS_PODMAN.exists() else None)


def _timed_build(cli: Engine, project: Project, tag: str, *extra: str) -> float:
    started = time.perf_counter()
    argv = ["build", "--tag", tag, "--network", "host", *extra]
    if cli.kind == "podman":
        argv += ["--format", "docker", "--pull=never"]
    cli(*argv, project.path, timeout=1800)
    return time.perf_counter() - started


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def instruction(created_by: str) -> str:
    """The Dockerfile instruction behind a layer, as `history` records it, made readable."""
    text = " ".join(created_by.split())
    text = re.sub(r"^/bin/sh -c #\(nop\) ", "", text)
    text = re.sub(r"^\|\d+ (?:\S+=\S* )*/bin/sh -c ", "RUN ", text)  # RUN with build args
    text = re.sub(r"\b(file|dir):[0-9a-f]{12,}", r"\1:…", text)
    return text if len(text) <= 60 else text[:59] + "…"


def layers(cli: Engine, image: str) -> list[tuple[int, str]]:
    """(size in bytes, instruction) of each layer that holds files, newest first."""
    out = cli("history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image).stdout
    found = []
    for line in out.splitlines():
        size_text, _, created_by = line.partition("\t")
        size = _bytes(size_text)
        if size > 0:
            found.append((size, instruction(created_by)))
    return found


def _bytes(text: str) -> int:
    """'12.3MB', '845kB', '0B' as docker/podman history print them."""
    text = text.strip()
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("KB", 1e3), ("B", 1)):
        if text.endswith(unit):
            try:
                return int(float(text[: -len(unit)].strip()) * factor)
            except ValueError:
                return 0
    return int(text) if text.isdigit() else 0


def dangling(cli: Engine) -> set[str]:
    return set(cli("images", "--all", "--quiet", "--filter", "dangling=true").stdout.split())


def remove(cli: Engine, tag: str, before: set[str]) -> None:
    """The image, then the cache images its builds left (dangling ones that were not there
    before: removing one frees its parents, hence the rounds). Images in use stay."""
    cli("rmi", tag, check=False)
    for _ in range(20):
        left = dangling(cli) - before
        if not left or cli("rmi", *sorted(left), check=False).returncode != 0:
            break


def measure(projects: dict[str, Project]) -> list[Row]:
    cli = engine()
    rows: list[Row] = []
    for framework, project in projects.items():
        tag = f"localhost/svcgen-bench/{framework}:latest"
        before = dangling(cli)
        try:
            rows += _measure(cli, framework, project, tag)
        finally:
            remove(cli, tag, before)
    return rows


def _measure(cli: Engine, framework: str, project: Project, tag: str) -> list[Row]:
    cold = _timed_build(cli, project, tag, "--no-cache")
    warm = _timed_build(cli, project, tag)
    source = next((project.path / "src" / project.package).glob("__init__.py"))
    original = source.read_text(encoding="utf-8")
    try:
        source.write_text(original + "\n# bench: a source change\n", encoding="utf-8")
        changed = _timed_build(cli, project, tag)
    finally:
        source.write_text(original, encoding="utf-8")
    size = int(cli("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    parts = layers(cli, tag)
    rows = [
        Row("image", f"{framework}: size ({cli.kind})", _mb(size)),
        Row("image", f"{framework}: size above the base image", _mb(sum(p[0] for p in parts[:-1]))),
        Row("image", f"{framework}: cold build (--no-cache)", f"{cold:.1f} s"),
        Row("image", f"{framework}: warm build (nothing changed)", f"{warm:.1f} s"),
        Row("image", f"{framework}: build after a source change", f"{changed:.1f} s"),
    ]
    rows += [
        Row(
            "image",
            f"{framework}: layer {i + 1}: {what}" + (" (base image)" if i == 0 else ""),
            _mb(layer),
        )
        for i, (layer, what) in enumerate(reversed(parts))
    ]
    return rows


def rows(work: Path, projects: dict[str, Project]) -> list[Row]:
    return measure(projects)


if __name__ == "__main__":
    sys.exit(run_section(rows))
