"""Copy to green: `copier copy`, `make install` (warm uv cache), `make test`, per framework.

The uv cache is the one the test suite shares (.cache/uv), warmed by installing a
project of the same framework first (harness.prepared_project).
Run alone: `.venv/bin/python bench/green.py` (after a warm-up install).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import FRAMEWORKS, REPO, Row, run_section

from tests.support import Project, project_env

TARGET_SECONDS = 60.0


@dataclass
class Green:
    framework: str
    copy: float
    install: float
    test: float

    @property
    def total(self) -> float:
        return self.copy + self.install + self.test


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = result.stdout[-3000:] + result.stderr[-3000:]
        raise RuntimeError(f"{' '.join(argv)} failed in {cwd}:\n{output}")
    return time.perf_counter() - started


def copy_to_green(work: Path, framework: str, python_version: str) -> Green:
    dest = work / f"green-{framework}"
    env = project_env(python_version)
    copy = _timed(
        [
            sys.executable,
            "-m",
            "copier",
            "copy",
            "--quiet",
            "--trust",
            "--defaults",
            "--vcs-ref=HEAD",  # the working tree, not the newest release tag
            f"--data=framework={framework}",
            str(REPO),
            str(dest),
        ],
        work,
        env,
    )
    install = _timed(["make", "install"], dest, env)
    test = _timed(["make", "test"], dest, env)
    return Green(framework, copy, install, test)


def measure(work: Path, projects: dict[str, Project]) -> list[Green]:
    return [copy_to_green(work, f, str(projects[f].answers["python_version"])) for f in FRAMEWORKS]


def rows(results: list[Green]) -> list[Row]:
    return [
        Row(
            "copy to green",
            f"{g.framework}: copy + install + test",
            f"{g.total:.1f} s ({g.copy:.1f} + {g.install:.1f} + {g.test:.1f})",
            f"< {TARGET_SECONDS:g} s",
            g.total < TARGET_SECONDS,
        )
        for g in results
    ]


def main() -> int:
    return run_section(lambda work, projects: rows(measure(work, projects)))


if __name__ == "__main__":
    sys.exit(main())
