"""Run by Copier after a copy: make the new project a git repository.

`copier update` needs the project under git. Nothing is committed: the first
commit is the user's to make.
"""

from __future__ import annotations

import subprocess
import sys


def main() -> int:
    try:
        inside = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        print("git not found: run `git init` before `copier update`", file=sys.stderr)
        return 0
    if inside.returncode != 0:
        subprocess.run(["git", "init", "--quiet", "--initial-branch=main"], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
