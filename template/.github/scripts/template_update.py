"""Bring this repository up to its template's newest release, on a branch, as one pull request.

Run by .github/workflows/template-update.yml (needs copier: `uv run --with copier==...`):

1. read the template source and version from .copier-answers.yml (`_src_path`, `_commit`);
2. list the source's release tags (`git ls-remote`); stop when none is newer;
3. leave an open update branch alone when it already proposes that version (the team may
   be resolving its conflicts there); otherwise run `copier update --vcs-ref NEW` on a
   fresh branch from HEAD, conflicts marked inline, and commit the result;
4. push the branch (never the default branch), then open or refresh one pull request whose
   body lists the new version, the template CHANGELOG entries in between and every
   conflicted file.

Environment: GH_TOKEN (push and API), GITHUB_REPOSITORY, GITHUB_SERVER_URL, GITHUB_API_URL
(set by GitHub Actions); TEMPLATE_UPDATE_BRANCH (default `template-update`).
Exit codes: 0 up to date or proposed, 1 failed, 2 the answers file can't be used.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

ANSWERS = Path(".copier-answers.yml")
MARKER = re.compile(r"^(<{7}|>{7}) ", re.MULTILINE)
HEADING = re.compile(r"^## \[?v?(\d[^\s\]]*)", re.MULTILINE)


class UpdateError(Exception):
    """Exit 1: the update, git or the API failed."""


class AnswersError(Exception):
    """Exit 2: the answers file can't say where the template is."""


def git(*args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if check and result.returncode:
        raise UpdateError(f"git {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


def version_of(ref: str) -> Version | None:
    try:
        return Version(ref)
    except InvalidVersion:
        return None


def git_url(source: str) -> str:
    """`_src_path` as git understands it (Copier also accepts gh:, gl: and git+ forms)."""
    for alias, host in (("gh:", "https://github.com/"), ("gl:", "https://gitlab.com/")):
        if source.startswith(alias):
            return host + source.removeprefix(alias).lstrip("/")
    return source.removeprefix("git+")


def read_answers() -> tuple[str, str]:
    """(template source, version) from the answers file; exits 2 when they can't be used."""
    answers = yaml.safe_load(ANSWERS.read_text(encoding="utf-8")) if ANSWERS.is_file() else None
    if not isinstance(answers, dict) or not answers.get("_src_path"):
        raise AnswersError(f"{ANSWERS} missing or without _src_path")
    source, current = str(answers["_src_path"]), str(answers.get("_commit", ""))
    is_url = re.match(r"^(gh:|gl:|[\w.+-]+://|[\w.-]+@[\w.-]+:)", source)
    if not is_url and not Path(source).expanduser().is_dir():
        raise AnswersError(
            f"_src_path is a local path ({source}) that does not exist "
            "here: set it to the template's git URL in .copier-answers.yml (Renovate's "
            "copier manager skips such a repo too)"
        )
    return source, current


def newest_release(source: str) -> str | None:
    """The newest final PEP 440 tag of `source` (what `copier update` would pick)."""
    refs = git("ls-remote", "--tags", "--refs", git_url(source)).splitlines()
    tags = [line.rsplit("refs/tags/", 1)[-1] for line in refs]
    releases = [(v, t) for t in tags if (v := version_of(t)) and not v.is_prerelease]
    return max(releases)[1] if releases else None


def changelog_between(source: str, old: Version | None, new: str) -> str:
    """The template CHANGELOG sections after `old` up to `new` (the text under `## X.Y.Z`)."""
    with tempfile.TemporaryDirectory(prefix="template-update-") as tmp:
        clone = ["clone", "--quiet", "--depth", "1", "--branch", new, git_url(source), tmp]
        if subprocess.run(["git", *clone], capture_output=True, check=False).returncode:
            return "_The template could not be cloned to read its CHANGELOG._"
        changelog = Path(tmp, "CHANGELOG.md")
        text = changelog.read_text(encoding="utf-8") if changelog.is_file() else ""
    newest = version_of(new)
    headings = list(HEADING.finditer(text))
    sections = []
    for i, heading in enumerate(headings):
        version = version_of(heading.group(1))
        if version is None or newest is None or version > newest:
            continue
        if old is not None and version <= old:
            continue
        end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
        body = text[heading.end() : end].strip()
        sections.append(f"### {heading.group(1)}\n\n{body}")
    return "\n\n".join(sections) or "_No CHANGELOG entries between these versions._"


def conflicted_files() -> list[str]:
    unmerged = git("diff", "--name-only", "--diff-filter=U").split()
    changed = git("ls-files", "--modified", "--others", "--exclude-standard").split()
    found = set(unmerged)
    for name in changed:
        path = Path(name)
        if name.endswith(".rej"):
            found.add(name)
        elif path.is_file():
            try:
                if MARKER.search(path.read_text(encoding="utf-8")):
                    found.add(name)
            except UnicodeDecodeError:
                continue
    return sorted(found)


def pr_body(source: str, current: str, new: str, changes: str, conflicts: list[str]) -> str:
    lines = [
        f"Updates this repository from template version **{current}** to **{new}**",
        f"(`{source}`), with `copier update --trust --defaults --vcs-ref {new}`.",
        "",
        "## What the template changed",
        "",
        changes,
        "",
        f"## Conflicts ({len(conflicts)})",
        "",
    ]
    if conflicts:
        lines += [
            "Both the template and this repository changed the same lines. Each file keeps both",
            "sides between `<<<<<<< before updating` and `>>>>>>> after updating`: check out",
            "this branch, keep what you need, delete the markers, commit and push.",
            "",
            *(f"- `{name}`" for name in conflicts),
        ]
    else:
        lines.append("None: every edit of this repository merged cleanly.")
    return "\n".join(lines) + "\n"


class GitHub:
    """The few REST calls needed: the default branch, find / open / refresh one pull request."""

    def __init__(self, token: str) -> None:
        self.api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
        self.repo = os.environ["GITHUB_REPOSITORY"]
        self.token = token

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(  # the API's URL comes from GitHub's environment
            f"{self.api}/repos/{self.repo}{path}",
            data=json.dumps(payload).encode() if payload is not None else None,
            method=method,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def default_branch(self) -> str:
        return str(self.call("GET", "")["default_branch"])

    def propose(self, branch: str, base: str, title: str, body: str) -> str:
        owner = self.repo.split("/")[0]
        open_prs = self.call("GET", f"/pulls?state=open&head={owner}:{branch}&base={base}")
        if open_prs:
            number = open_prs[0]["number"]
            self.call("PATCH", f"/pulls/{number}", {"title": title, "body": body})
            return f"refreshed pull request #{number}"
        created = self.call(
            "POST", "/pulls", {"title": title, "head": branch, "base": base, "body": body}
        )
        return f"opened pull request #{created['number']}"


def main() -> int:
    source, current = read_answers()
    token = os.environ.get("GH_TOKEN", "")
    branch = os.environ.get("TEMPLATE_UPDATE_BRANCH", "template-update")
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    remote = f"{server}/{os.environ['GITHUB_REPOSITORY']}.git"
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    auth = ("-c", f"http.extraheader=AUTHORIZATION: basic {basic}")

    new = newest_release(source)
    old = version_of(current)
    if new is None or (old is not None and Version(new) <= old):
        print(f"template-update: on {current}, the newest release is {new}: nothing to do")
        return 0
    github = GitHub(token)
    base = github.default_branch()
    if branch == base:
        raise UpdateError(f"the update branch must not be the default branch ({base})")

    proposed = git(*auth, "ls-remote", "--heads", remote, branch).strip()
    if proposed:
        git(*auth, "fetch", "--quiet", remote, f"refs/heads/{branch}")
        on_branch = yaml.safe_load(git("show", f"FETCH_HEAD:{ANSWERS}")) or {}
        if str(on_branch.get("_commit")) == new:
            print(f"template-update: {branch} already proposes {new}: left as it is")
            return 0

    git("switch", "--quiet", "-C", branch)
    copier = [sys.executable, "-m", "copier", "update", "--trust", "--defaults"]
    copier += ["--skip-answered", "--conflict", "inline", "--vcs-ref", new]
    updated = subprocess.run(copier, capture_output=True, text=True, check=False)
    if updated.returncode:
        raise UpdateError(f"copier update failed:\n{updated.stdout}{updated.stderr}")
    conflicts = conflicted_files()
    if not git("config", "user.email", check=False).strip():
        git("config", "user.name", "github-actions[bot]")
        git("config", "user.email", "41898282+github-actions[bot]@users.noreply.github.com")
    git("add", "--all")
    message = f"Update template to {new}" + (f" ({len(conflicts)} conflicts)" if conflicts else "")
    git("commit", "--quiet", "--no-verify", "-m", message)
    git(*auth, "push", "--quiet", "--force", remote, f"HEAD:refs/heads/{branch}")

    body = pr_body(source, current, new, changelog_between(source, old, new), conflicts)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as out:
            out.write(body)
    print(f"template-update: {current} -> {new} on {branch}: {len(conflicts)} conflicted file(s)")
    print(f"template-update: {github.propose(branch, base, f'Update template to {new}', body)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (UpdateError, AnswersError) as error:
        print(f"template-update: {error}", file=sys.stderr)
        sys.exit(2 if isinstance(error, AnswersError) else 1)
