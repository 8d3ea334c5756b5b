"""Copier migrations for `copier update`: carry a user's answers and edits over renames.

Used from copier.yml's `_migrations`; Copier runs them in the project being updated.

Renamed answer (release v2.0.0 renames `author_email` to `owner_email`), before the update
reads the answers:

    - version: v2.0.0
      when: "{{ _stage == 'before' }}"
      command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/hooks/migrate.py",
                "rename-answer", "author_email", "owner_email"]

Renamed file (release v2.0.0 renames `.env.example` to `.env.sample`), after the update:

    - version: v2.0.0
      command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/hooks/migrate.py",
                "rename-file", ".env.example", ".env.sample"]

Without them an update silently drops the user's answer (the new question's default is
used) or the user's edits to the old file (Copier deletes a file the new version no longer
has and renders the new one fresh).

Renamed project (`--data project_slug=...` or `package_name=...` on update), refused before
anything is written, on every update (no `version`), because Copier would delete every file
under the old name, the team's edits with them, and render fresh ones under the new name:

    - when: "{{ _stage == 'before' }}"
      command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/hooks/migrate.py",
                "refuse-rename", "--data", "{{ _copier_conf.data | tojson }}",
                "project_slug", "package_name"]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[1]
LABELS = ("before updating", "last update", "after updating")  # Copier's own labels


def rename_answer(answers_file: Path, old: str, new: str) -> str:
    """Rename the top-level key `old` to `new` in the answers file, in place.

    A line-level edit keeps the file's order and comments. Nothing happens when
    `old` is absent (already migrated, or never answered) or `new` already exists.
    """
    text = answers_file.read_text(encoding="utf-8")
    old_key = re.compile(rf"^{re.escape(old)}:(?=\s|$)", re.MULTILINE)
    if not old_key.search(text):
        return f"{answers_file}: no answer {old!r}, nothing to rename"
    if re.search(rf"^{re.escape(new)}:(?=\s|$)", text, re.MULTILINE):
        return f"{answers_file}: {new!r} already answered, {old!r} left as is"
    answers_file.write_text(old_key.sub(f"{new}:", text, count=1), encoding="utf-8")
    return f"{answers_file}: answer {old!r} renamed to {new!r}"


#: Answers that name files and folders (charts/<slug>/, src/<package>/): see rename_refusal.
NAMING_ANSWERS = ("project_slug", "package_name")


def how_to_rename(old: str, new: str) -> str:
    """The safe way to rename, for the refusal messages of `copier update` and `svcgen update`."""
    return (
        "To rename safely, in a commit of its own: `git mv` the folders and files named after "
        f"{old!r} (charts/<slug>/, src/<package_name>/), replace the name in the files that "
        f"mention it, set the answer to {new!r} in .copier-answers.yml, run the tests, commit; "
        "updates then continue under the new name with every edit kept. "
        "Or generate a new repo with the new name and move your code across."
    )


def rename_refusal(previous: dict[str, Any], data: dict[str, Any], keys: tuple[str, ...]) -> str:
    """Why an update that changes one of `keys` must not run ('' when it may)."""
    changed = [k for k in keys if k in data and k in previous and data[k] != previous[k]]
    if not changed:
        return ""
    what = ", ".join(f"{k} {previous[k]!r} -> {data[k]!r}" for k in changed)
    first = changed[0]
    return (
        f"refusing to rename on update ({what}): the update would delete every file under "
        "the old name, with your edits to them, and generate fresh ones under the new name. "
        "Nothing was changed. " + how_to_rename(str(previous[first]), str(data[first]))
    )


def refuse_rename(answers_file: Path, data_json: str, keys: tuple[str, ...]) -> str:
    """Stage `before`: the answers file still holds the previous answers; compare with --data."""
    import yaml

    previous = yaml.safe_load(answers_file.read_text(encoding="utf-8")) or {}
    try:
        data = json.loads(data_json or "{}")
    except json.JSONDecodeError as error:
        raise SystemExit(f"migrate: --data is not JSON: {error}") from None
    if not isinstance(previous, dict) or not isinstance(data, dict):
        return ""
    return rename_refusal(previous, data, keys)


def _git(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], input=stdin, capture_output=True, text=True, check=False)


def _render_previous_version(version: str, answers_text: str, dest: Path) -> None:
    """Render the template at `version` with the answers the project had then."""
    import copier
    import yaml

    answers: dict[str, Any] = yaml.safe_load(answers_text) or {}
    copier.run_copy(
        str(TEMPLATE),
        str(dest),
        data={k: v for k, v in answers.items() if not k.startswith("_")},
        vcs_ref=version,
        defaults=True,
        unsafe=True,
        skip_tasks=True,
        quiet=True,
    )


def _mark_unmerged(path: str, base: str, ours: str, theirs: str) -> None:
    """Record a conflict in git's index as Copier does, so `git status` lists `path`."""
    prefix = _git("rev-parse", "--show-prefix").stdout.strip()
    lines = [f"0 {'0' * 40}\t{prefix}{path}"]
    for stage, text in ((1, base), (2, ours), (3, theirs)):
        sha = _git("hash-object", "-w", "--stdin", stdin=text).stdout.strip()
        lines.append(f"100644 {sha} {stage}\t{prefix}{path}")
    _git("update-index", "--index-info", stdin="\n".join(lines) + "\n")


def rename_file(old: str, new: str, version_from: str, answers_file: Path) -> str:
    """After an update: merge the user's edits of `old` (from HEAD) into the new `new`.

    Three-way: base = `old` as the previous version rendered it, ours = the user's
    committed `old`, theirs = `new` as this version rendered it. Where both changed the
    same lines the file gets Copier's inline markers and git lists it as unmerged.
    """
    user = _git("show", f"HEAD:./{old}")
    if user.returncode != 0:
        return f"{old}: not in the last commit, nothing to carry over"
    target, leftover = Path(new), Path(old)
    if leftover.is_file() and leftover.read_text(encoding="utf-8") == user.stdout:
        leftover.unlink()
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(user.stdout, encoding="utf-8")
        return f"{old}: moved to {new}"
    previous_answers = _git("show", f"HEAD:./{answers_file.as_posix()}").stdout
    with tempfile.TemporaryDirectory(prefix="svcgen-migrate-") as tmp:
        _render_previous_version(version_from, previous_answers, Path(tmp) / "old")
        rendered = Path(tmp) / "old" / old
        base = rendered.read_text(encoding="utf-8") if rendered.is_file() else ""
        theirs = target.read_text(encoding="utf-8")
        sides = []
        for name, text in (("ours", user.stdout), ("base", base), ("theirs", theirs)):
            side = Path(tmp) / name
            side.write_text(text, encoding="utf-8")
            sides.append(str(side))
        labels = [arg for label in LABELS for arg in ("-L", label)]
        merged = _git("merge-file", "-p", *labels, *sides)
    if merged.returncode < 0 or merged.returncode > 127:
        raise SystemExit(f"migrate: git merge-file failed on {new}: {merged.stderr}")
    target.write_text(merged.stdout, encoding="utf-8")
    if merged.returncode:
        _mark_unmerged(new, base, user.stdout, theirs)
        return f"{old} -> {new}: your edits merged, {merged.returncode} conflict(s) marked"
    return f"{old} -> {new}: your edits merged"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers-file", type=Path, default=Path(".copier-answers.yml"))
    commands = parser.add_subparsers(dest="command", required=True)
    answer = commands.add_parser("rename-answer", help="rename an answer key (stage: before)")
    answer.add_argument("old")
    answer.add_argument("new")
    file = commands.add_parser("rename-file", help="carry edits to a renamed file (stage: after)")
    file.add_argument("old")
    file.add_argument("new")
    file.add_argument(
        "--version-from",
        default=os.environ.get("VERSION_FROM", ""),
        help="the version updated from (Copier sets $VERSION_FROM)",
    )
    refuse = commands.add_parser(
        "refuse-rename", help="fail when --data changes one of KEYS (stage: before)"
    )
    refuse.add_argument("--data", default="{}", help="Copier's --data, as JSON")
    refuse.add_argument("keys", nargs="*", default=list(NAMING_ANSWERS))
    args = parser.parse_args(argv)
    if not args.answers_file.is_file():
        print(f"migrate: {args.answers_file} not found", file=sys.stderr)
        return 1
    if args.command == "refuse-rename":
        refusal = refuse_rename(args.answers_file, args.data, tuple(args.keys))
        if refusal:
            print(f"error: {refusal}", file=sys.stderr)
            return 1
        return 0
    if args.command == "rename-answer":
        message = rename_answer(args.answers_file, args.old, args.new)
    else:
        if not args.version_from:
            print("migrate: rename-file needs --version-from or $VERSION_FROM", file=sys.stderr)
            return 2
        message = rename_file(args.old, args.new, args.version_from, args.answers_file)
    print(f"migrate: {message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
