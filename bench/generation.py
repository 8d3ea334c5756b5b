"""Generation speed: svcgen's template vs a trivial Copier template of the same size.

Prints the median wall time of `copier copy` (5 runs each) for the default answers and
for the all-options answers, next to the floor: a trivial template with the same number
of files, the same share of them rendered through Jinja, generated the same way (CLI,
from a git repository, --trust --defaults). Run: `.venv/bin/python bench/generation.py`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIER = [sys.executable, "-m", "copier"]
ALL_OPTIONS = [
    "--data=services=[postgres, redis, rabbitmq]",
    "--data=tracing=true",
    "--data=metrics=true",
]
TARGET_RATIO = 1.3


def copy(src: Path, dest: Path, extra: list[str]) -> float:
    if dest.exists():
        shutil.rmtree(dest)
    paths = [str(src), str(dest)]
    started = time.perf_counter()
    subprocess.run(
        # HEAD: what was just committed, not the newest release tag.
        [*COPIER, "copy", "--quiet", "--trust", "--defaults", "--vcs-ref=HEAD", *extra, *paths],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def median_time(src: Path, work: Path, extra: list[str], runs: int) -> float:
    return statistics.median(copy(src, work / "out", extra) for _ in range(runs))


def files_of(project: Path) -> list[Path]:
    return [p for p in project.rglob("*") if p.is_file() and ".git" not in p.parts]


def committed_copy_of_repo(work: Path) -> Path:
    """The template as committed plus working-tree changes, as a clean git repo (like a user's)."""
    clone = work / "svcgen"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    for part in ("copier.yml", "catalog", "template", "hooks"):
        target = clone / part
        if target.is_dir():
            shutil.rmtree(target)
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    git = ["git", "-C", str(clone), "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "--quiet", "--allow-empty", "-m", "bench"], check=True)
    return clone


def trivial_template(work: Path, n_files: int, n_jinja: int) -> Path:
    """A Copier template with n_files files, n_jinja of them rendered with one variable."""
    root = work / f"floor-{n_files}"
    (root / "template").mkdir(parents=True)
    (root / "copier.yml").write_text(
        "_subdirectory: template\nname:\n  type: str\n  default: demo\n", encoding="utf-8"
    )
    (root / "template" / "{{_copier_conf.answers_file}}.jinja").write_text(
        "{{ _copier_answers|to_nice_yaml -}}\n", encoding="utf-8"
    )
    for i in range(n_files - 1):
        if i < n_jinja - 1:
            (root / "template" / f"file{i}.txt.jinja").write_text(
                "{{ name }}\n" * 20, encoding="utf-8"
            )
        else:
            (root / "template" / f"file{i}.txt").write_text("static\n" * 20, encoding="utf-8")
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run([*git, "init", "--quiet"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "floor"], check=True)
    return root


def count_jinja(n_files_rendered: int) -> int:
    sources = [p for p in (REPO / "template").rglob("*") if p.is_file()]
    share = sum(p.name.endswith(".jinja") for p in sources) / max(len(sources), 1)
    return round(n_files_rendered * share)


def measure(runs: int) -> list[tuple[str, int, float, float, float]]:
    """(answers, files, svcgen median s, floor median s, ratio) for default and all options."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="svcgen-bench-") as tmp:
        work = Path(tmp)
        template = committed_copy_of_repo(work)
        for label, extra in (("default", []), ("all options", ALL_OPTIONS)):
            copy(template, work / "probe", extra)
            n_files = len(files_of(work / "probe"))
            floor = trivial_template(work, n_files, count_jinja(n_files))
            copy(floor, work / "probe-floor", [])  # warm caches equally
            ours = median_time(template, work, extra, runs)
            base = median_time(floor, work, [], runs)
            rows.append((label, n_files, ours, base, ours / base))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = measure(args.runs)
    print(f"copier copy, median of {args.runs} runs (target: <= {TARGET_RATIO}x floor, < 1 s)")
    print(f"{'answers':<12} {'files':>5} {'svcgen':>8} {'floor':>8} {'ratio':>6}  verdict")
    for label, n_files, ours, base, ratio in rows:
        ok = ratio <= TARGET_RATIO and ours < 1.0
        print(
            f"{label:<12} {n_files:>5} {ours:>7.3f}s {base:>7.3f}s {ratio:>5.2f}x  "
            f"{'meets' if ok else 'MISSES'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
