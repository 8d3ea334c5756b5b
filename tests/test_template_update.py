"""The generated `template-update` workflow's update step, run here against local releases.

A throwaway template (this repo's copier.yml, template/ and hooks/, with a CHANGELOG) is
released as v1.0.1; a project generated from its `file://...git` URL is committed, edited by the
team and cloned into a bare "GitHub" remote (GITHUB_SERVER_URL=file://...). The template then
releases v2.0.0 (one line conflicting with the team's edit). The workflow's own `run:` step
executes the generated script with the pinned Copier (this environment's, checked equal),
pushing to the bare remote; pull request creation is stubbed at the API boundary by a local
HTTP server standing in for api.github.com (GITHUB_API_URL), which records every call.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from .ci_support import PINNED, load_yaml
from .conftest import ProjectFactory
from .repos import (
    Repo,
    TemplateRepo,
    answers,
    conflict_blocks,
    copier,
    heading_in_both,
    isolated_git_env,
    run,
)
from .support import matrix

WORKFLOW = ".github/workflows/template-update.yml"
SCRIPT = ".github/scripts/template_update.py"
TEAM_REPLICAS = "replicaCount: 5  # billing peak load"
CHANGELOG = """\
# Changelog

## Unreleased

- Not released yet: must not be listed.

## 1.0.0

- The first release: the repo is already on it, must not be listed.
"""


@dataclass
class FakeGitHub:
    """api.github.com for one repository: its default branch and its pull requests."""

    repo: str
    default_branch: str = "main"
    calls: list[tuple[str, str, dict[str, Any] | None, str]] = field(default_factory=list)
    pulls: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, method: str, path: str, body: dict[str, Any] | None, auth: str) -> Any:
        self.calls.append((method, path, body, auth))
        prefix = f"/repos/{self.repo}"
        assert path.startswith(prefix), path
        rest = path[len(prefix) :]
        if method == "GET" and rest == "":
            return {"default_branch": self.default_branch}
        if method == "GET" and rest.startswith("/pulls?"):
            return [p for p in self.pulls if p["state"] == "open"]
        if method == "POST" and rest == "/pulls":
            assert body is not None
            self.pulls.append({"number": 7 + len(self.pulls), "state": "open", **body})
            return self.pulls[-1]
        if method == "PATCH" and rest.startswith("/pulls/"):
            assert body is not None
            pull = next(p for p in self.pulls if p["number"] == int(rest.split("/")[-1]))
            pull.update(body)
            return pull
        raise AssertionError(f"unexpected API call {method} {path}")

    def writes(self) -> list[tuple[str, str, dict[str, Any] | None, str]]:
        return [call for call in self.calls if call[0] != "GET"]


@pytest.fixture
def fake_github() -> Iterator[tuple[FakeGitHub, str]]:
    github = FakeGitHub("team/svc")

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            try:
                answer = github.handle(
                    self.command, self.path, body, self.headers.get("Authorization", "")
                )
                status, payload = 200, json.dumps(answer).encode()
            except AssertionError as error:
                status, payload = 422, json.dumps({"message": str(error)}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield github, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def workflow_step(project: Repo) -> list[str]:
    """The update step's command, with `uv run --with copier==X` checked against this
    environment's Copier and replaced by this interpreter (no download here)."""
    workflow = yaml.safe_load(project.read(WORKFLOW))
    steps = workflow["jobs"]["update"]["steps"]
    step = next(s for s in steps if "run" in s)
    command = shlex.split(step["run"])
    assert command[:3] == ["uv", "run", "--no-project"], command
    assert command[3:5] == ["--with", f"copier=={version('copier')}"], (
        f"the workflow pins {command[4]}, these tests run copier {version('copier')}"
    )
    assert command[5:] == ["python", SCRIPT], command
    assert step["env"]["GH_TOKEN"] == (
        "${{ secrets.TEMPLATE_UPDATE_TOKEN || secrets.GITHUB_TOKEN }}"
    )
    return [sys.executable, SCRIPT]


@dataclass
class Fleet:
    template: TemplateRepo
    project: Repo
    remote: Path
    env: dict[str, str]
    conflict_line: str


def release(template: TemplateRepo, tag: str, entry: str) -> None:
    """Release `tag` with its CHANGELOG section above the previous releases'."""
    section = f"## {tag.removeprefix('v')}\n\n- {entry}\n\n"
    text = re.sub(r"^(?=## \d)", section, template.read("CHANGELOG.md"), count=1, flags=re.M)
    template.write("CHANGELOG.md", text)
    template.release(tag)


@pytest.fixture
def fleet(tmp_path: Path, fake_github: tuple[FakeGitHub, str]) -> Fleet:
    _, api = fake_github
    env = isolated_git_env(tmp_path)
    # A URL Copier and Renovate both take: file://, ending in .git (Copier reads a URL
    # without it as a local folder).
    template = TemplateRepo.create(tmp_path / "svcgen.git", env)
    template.write("CHANGELOG.md", CHANGELOG)
    template.release("v1.0.1")  # a release the project starts on
    source = template.path.as_uri()
    copier("copy", "--trust", "--defaults", source, "svc", cwd=tmp_path, env=env)
    project = Repo(tmp_path / "svc", env)
    assert answers(project)["_src_path"] == source
    project.commit("generated")
    slug = str(answers(project)["project_slug"])
    values = f"charts/{slug}/values.yaml"
    replicas = next(
        ln for ln in project.read(values).splitlines() if ln.startswith("replicaCount:")
    )
    project.replace_line(values, replicas, TEAM_REPLICAS)
    heading = heading_in_both(template.read("template/README.md.jinja"), project.read("README.md"))
    project.replace_line("README.md", heading, heading + " (team edition)")
    project.commit("the team's edits")
    remote = tmp_path / "remotes" / "team" / "svc.git"
    run("git", "clone", "--quiet", "--bare", str(project.path), str(remote), cwd=tmp_path, env=env)

    template.replace_line("template/README.md.jinja", heading, heading + " (template v2)")
    template.append(template.source("Makefile"), "\n# Template v2 was here.\n")
    release(template, "v2.0.0", "Template v2: README heading and a Makefile line.")

    run_env = {
        **env,
        "GH_TOKEN": "fake-token",
        "GITHUB_API_URL": api,
        "GITHUB_SERVER_URL": (tmp_path / "remotes").as_uri(),
        "GITHUB_REPOSITORY": "team/svc",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    return Fleet(template, project, remote, run_env, heading + " (team edition)")


def update_step(fleet: Fleet, **extra: str) -> subprocess.CompletedProcess[str]:
    command = workflow_step(fleet.project)
    return run(*command, cwd=fleet.project.path, env={**fleet.env, **extra}, check=False)


def remote_git(fleet: Fleet, *args: str) -> str:
    return run("git", *args, cwd=fleet.remote, env=fleet.env).stdout


def test_the_update_step_pushes_a_branch_and_opens_then_refreshes_one_pull_request(
    fleet: Fleet, fake_github: tuple[FakeGitHub, str]
) -> None:
    github, _ = fake_github
    main_before = remote_git(fleet, "rev-parse", "refs/heads/main")

    # Never the default branch: refused before anything is pushed or opened.
    refused = update_step(fleet, TEMPLATE_UPDATE_BRANCH="main")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "must not be the default branch" in refused.stderr
    assert not github.writes()

    result = update_step(fleet)
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout)
    assert remote_git(fleet, "rev-parse", "refs/heads/main") == main_before
    # The branch: the update to v2.0.0 committed, the team's edit kept, the conflict inline.
    on_branch = yaml.safe_load(remote_git(fleet, "show", "template-update:.copier-answers.yml"))
    assert on_branch["_commit"] == "v2.0.0"
    slug = on_branch["project_slug"]
    chart = remote_git(fleet, "show", f"template-update:charts/{slug}/values.yaml")
    assert TEAM_REPLICAS in chart.splitlines()
    assert "# Template v2 was here." in remote_git(fleet, "show", "template-update:Makefile")
    blocks = conflict_blocks(remote_git(fleet, "show", "template-update:README.md"))
    assert len(blocks) == 1
    assert fleet.conflict_line in blocks[0][0]
    # The pull request: one, from the branch to the default branch, the body listing it all.
    (method, _, pull, auth), *_ = github.writes()
    assert (method, auth) == ("POST", "Bearer fake-token")
    assert pull is not None
    assert (pull["head"], pull["base"], pull["title"]) == (
        "template-update", "main", "Update template to v2.0.0"
    )  # fmt: skip
    body = pull["body"]
    assert "**v1.0.1** to **v2.0.0**" in body
    assert "### 2.0.0\n\n- Template v2: README heading and a Makefile line." in body
    assert "Not released yet" not in body
    assert "The first release" not in body
    assert "## Conflicts (1)" in body
    assert re.findall(r"^- `(.+)`$", body, re.M) == ["README.md"]
    assert Path(fleet.env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8") == body

    # Next week, same release: the branch (maybe holding the team's resolutions) is left alone.
    pushed = remote_git(fleet, "rev-parse", "refs/heads/template-update")
    run("git", "switch", "--quiet", "main", cwd=fleet.project.path, env=fleet.env)
    again = update_step(fleet)
    assert again.returncode == 0, again.stderr
    assert "already proposes v2.0.0" in again.stdout
    assert remote_git(fleet, "rev-parse", "refs/heads/template-update") == pushed
    assert len(github.writes()) == 1

    # A newer release: the branch is redone from main and the same pull request refreshed.
    release(fleet.template, "v3.0.0", "Template v3: nothing else.")
    newer = update_step(fleet)
    assert newer.returncode == 0, newer.stderr
    assert "refreshed pull request #7" in newer.stdout
    method, path, patch, _ = github.writes()[-1]
    assert (method, path) == ("PATCH", "/repos/team/svc/pulls/7")
    assert patch is not None
    assert patch["title"] == "Update template to v3.0.0"
    assert "**v1.0.1** to **v3.0.0**" in patch["body"]
    assert patch["body"].index("### 3.0.0") < patch["body"].index("### 2.0.0")
    assert len(github.pulls) == 1
    on_branch = yaml.safe_load(remote_git(fleet, "show", "template-update:.copier-answers.yml"))
    assert on_branch["_commit"] == "v3.0.0"

    # A repo already on the newest release: nothing to do, nothing called.
    run("git", "switch", "--quiet", "template-update", cwd=fleet.project.path, env=fleet.env)
    calls = len(github.calls)
    current = update_step(fleet)
    assert current.returncode == 0, current.stderr
    assert "nothing to do" in current.stdout
    assert len(github.calls) == calls


def test_a_local_template_path_is_refused_with_the_fix(fleet: Fleet) -> None:
    """What Renovate skips silently (`Invalid URL`), the workflow says out loud."""
    project = fleet.project
    text = project.read(".copier-answers.yml")
    project.write(
        ".copier-answers.yml",
        text.replace(str(answers(project)["_src_path"]), "/home/someone/svcgen"),
    )
    result = update_step(fleet)
    assert result.returncode == 2
    assert "local path (/home/someone/svcgen)" in result.stderr
    assert "git URL" in result.stderr


def test_workflow_policy(project: ProjectFactory) -> None:
    """Least privilege, pinned actions, no persisted credentials, scheduled and on demand.
    (actionlint, checkov, the workflow schema and shellcheck: test_ci_workflows.py, every
    combination.)"""
    generated = project(matrix()[0], install=False)
    text = (generated.path / WORKFLOW).read_text(encoding="utf-8")
    workflow = load_yaml(generated.path / WORKFLOW)
    assert set(workflow["on"]) == {"schedule", "workflow_dispatch"}  # never on push
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"] == {"group": "template-update", "cancel-in-progress": False}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    uses = [line for line in text.splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    assert len(uses) == 2
    assert all(PINNED.match(line) for line in uses), uses
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False
    assert (generated.path / SCRIPT).is_file()
