"""Copier migrations for `copier update`: carry a user's answers over renames.

Used from copier.yml's `_migrations`, run in the project being updated, e.g. when
release v2.0.0 renames the answer `author_email` to `owner_email`:

    _migrations:
      - version: v2.0.0
        when: "{{ _stage == 'before' }}"
        command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/hooks/migrate.py",
                  "rename-answer", "author_email", "owner_email"]

Without it, the update would drop the user's `author_email` and render the new
question's default instead, silently. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers-file", type=Path, default=Path(".copier-answers.yml"))
    commands = parser.add_subparsers(dest="command", required=True)
    rename = commands.add_parser("rename-answer", help="rename an answer key")
    rename.add_argument("old")
    rename.add_argument("new")
    args = parser.parse_args(argv)
    if not args.answers_file.is_file():
        print(f"migrate: {args.answers_file} not found", file=sys.stderr)
        return 1
    print(rename_answer(args.answers_file, args.old, args.new), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
