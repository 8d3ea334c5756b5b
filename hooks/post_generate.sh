#!/bin/sh
# Run by Copier after a copy: make the new project a git repository, which
# `copier update` needs. Nothing is committed: the first commit is the user's.
# Inside an existing repository (a monorepo) nothing is done.
if ! command -v git >/dev/null 2>&1; then
    echo "git not found: run 'git init' before 'copier update'" >&2
    exit 0
fi
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || git init --quiet --initial-branch=main
