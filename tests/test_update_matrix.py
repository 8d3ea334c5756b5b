"""The update path, end to end: the previous release -> this working tree, with a team's edits.

The previous release is built from this repo's history (PREVIOUS: main before the fleet-update
work; the repo has no release tags yet): a throwaway template repo holds its copier.yml,
template/ and hooks/ tagged v0.1.0, then this working tree's tagged v0.2.0 (built once per
xdist worker). For every combination of answers (tests/support.py `matrix()`: framework x every
subset of services, with Python version, metrics and tracing rotating), a project generated at
v0.1.0 gets a realistic set of team edits (code, a route, a chart value, the Makefile, the
README, new files), is updated to v0.2.0 with `copier update`, conflicts are counted and listed
(printed), resolved keeping the team's side, and every line the team wrote must still be there.
Then the project installs and passes its own `make lint` and the team's tests
(`tests/test_team.py`: the team's route and helper).

The template's own tests (tests/test_generated_project.py) already run `make lint test` on every
combination as generated; what an update adds is the merge. So the project's whole `make test`
runs on FULL: both frameworks and every backing service (one combination with none, one with all
three). mypy shares one cache across the combinations (the dependencies' analysis is the same).

Cost, measured as CPU time (user + sys, every child process included) on the shared 2-core
machine: the former 2 combinations, each with its own mypy cache and full `make test`: 119 s;
these 16: 322 s, i.e. ~15 s per combination beyond FULL (copier copy + update ~5 s, uv install,
ruff, mypy on a warm cache, the team's tests). On 2 idle cores that is ~+2 min of wall time.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

from .repos import (
    Repo,
    TemplateRepo,
    added_lines,
    answers,
    copier,
    isolated_git_env,
    keep_our_side,
    lost_lines,
    run,
    unmerged_paths,
)
from .support import REPO, TEMPLATE_FOLDERS, combo_id, matrix, project_env, service_env

PREVIOUS = "0fec6b49a028bccdcb30d02308aa46ad5b846118"
COMBOS = matrix()
# The whole `make test` here (both frameworks, every service); the team's tests everywhere.
FULL = {"fastapi-none-py3.11", "flask-postgres+redis+rabbitmq-py3.11-nometrics"}
pytestmark = pytest.mark.e2e


class UpdateReport(UserWarning):
    """What an update did: conflicts and team lines kept (shown, not a problem)."""


TEAM_CODE = '''

def is_production(settings: Settings) -> bool:
    """Owned by the team: production gets stricter behaviour."""
    return settings.environment == "production"
'''
TEAM_TEST = '''"""The team's own tests: a route and a helper the template never knew about."""

import httpx

from {package}.core.settings import Settings, is_production


def test_team_ping(client: httpx.Client) -> None:
    assert client.get("/team/ping").json() == {{"pong": True}}


def test_is_production() -> None:
    assert is_production(Settings(_env_file=None, environment="production"))
'''
ROUTE = {
    "fastapi": '    app.add_api_route("/team/ping", lambda: {"pong": True})  # team route',
    "flask": '    app.add_url_rule("/team/ping", "team_ping", lambda: {"pong": True})  # team',
}


def previous_release(into: Path) -> None:
    """copier.yml, template/ and hooks/ as they were at PREVIOUS, from git's objects."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", PREVIOUS, "copier.yml", "template", "hooks"],
        cwd=REPO, capture_output=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        tar.extractall(into, filter="data")


def team_edits(project: Repo, framework: str) -> None:
    given = answers(project)
    package, slug = str(given["package_name"]), str(given["project_slug"])
    project.append(f"src/{package}/core/settings.py", TEAM_CODE)
    app = f"src/{package}/app.py"
    lines = project.read(app).splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if line == "    return app\n")
    lines.insert(last, ROUTE[framework] + "\n")
    project.write(app, "".join(lines))
    values = f"charts/{slug}/values.yaml"
    replicas = next(
        ln for ln in project.read(values).splitlines() if ln.startswith("replicaCount:")
    )
    project.replace_line(values, replicas, "replicaCount: 5  # team: peak load")
    project.append(
        "Makefile", "\nteam-hello: ## The team's own target\n\t@echo hello from the team\n"
    )
    project.append("README.md", "\n## Runbook\n\nPage #team-oncall; dashboards in Grafana.\n")
    project.write("tests/test_team.py", TEAM_TEST.format(package=package))
    project.write("docs/decisions/0001-team.md", "# 1. The team owns this service\n\nAccepted.\n")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> TemplateRepo:
    """The throwaway template repo: PREVIOUS tagged v0.1.0, then this working tree v0.2.0."""
    home = tmp_path_factory.mktemp("update-matrix")
    template = TemplateRepo(home / "svcgen", isolated_git_env(home))
    template.path.mkdir()
    previous_release(template.path)
    template.git("init", "--quiet")
    template.release("v0.1.0")
    for folder in TEMPLATE_FOLDERS:
        shutil.rmtree(template.path / folder, ignore_errors=True)
    shutil.copy2(REPO / "copier.yml", template.path / "copier.yml")  # this working tree
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")
    for folder in TEMPLATE_FOLDERS:
        shutil.copytree(REPO / folder, template.path / folder, ignore=ignore)
    template.release("v0.2.0")
    return template


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_previous_release_with_team_edits_updates_to_this_tree(
    template: TemplateRepo, projects_dir: Path, tmp_path: Path, combo: dict[str, Any]
) -> None:
    env = template.env
    values = {k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in combo.items()}
    data = [a for k, v in values.items() for a in ("--data", f"{k}={v}")]
    copier("copy", "--trust", "--defaults", "--vcs-ref", "v0.1.0", *data,
           str(template.path), "svc", cwd=tmp_path, env=env)  # fmt: skip
    project = Repo(tmp_path / "svc", env)
    generated = project.commit("generated at v0.1.0")
    team_edits(project, combo["framework"])
    edited = project.commit("the team's edits")
    wanted = added_lines(project, generated, edited)

    copier("update", "--trust", "--defaults", cwd=project.path, env=env)
    assert answers(project)["_commit"] == "v0.2.0"
    conflicts = unmerged_paths(project)
    for rel in conflicts:
        project.write(rel, keep_our_side(project.read(rel)))
    assert not lost_lines(project, wanted), lost_lines(project, wanted)
    assert "replicaCount: 5  # team: peak load" in project.read(
        f"charts/{answers(project)['project_slug']}/values.yaml"
    )
    kept = sum(map(len, wanted.values()))
    # In pytest's warnings summary, so that `make test` (xdist, output captured) shows it.
    warnings.warn(
        UpdateReport(
            f"{combo_id(combo)}: v0.1.0 -> v0.2.0, {len(conflicts)} conflicted file(s) "
            f"{conflicts}, {kept} team lines in {len(wanted)} files all kept"
        ),
        stacklevel=1,
    )

    prefix = f"svcgen_upd_{uuid.uuid4().hex[:8]}"
    project_env_vars = {
        **project_env(str(combo["python_version"])),
        "GIT_CONFIG_GLOBAL": env["GIT_CONFIG_GLOBAL"],
        "PYTEST_ADDOPTS": "-v -p no:cacheprovider",
        # One cache for every combination: mypy checks a file again only if its hash changed.
        "MYPY_CACHE_DIR": str(projects_dir / "update-matrix-mypy-cache"),
        **service_env(combo["services"], prefix),
    }
    run("make", "install", cwd=project.path, env=project_env_vars)
    run("make", "lint", cwd=project.path, env=project_env_vars)
    if combo_id(combo) in FULL:
        result = run("make", "test", cwd=project.path, env=project_env_vars)
    else:
        result = run("uv", "run", "--frozen", "--env-file", ".env", "pytest", "tests/test_team.py",
                     cwd=project.path, env=project_env_vars)  # fmt: skip
    assert re.search(r"test_team\.py::test_team_ping PASSED", result.stdout), result.stdout[-3000:]
    assert "test_team.py::test_is_production PASSED" in result.stdout
    assert " failed" not in result.stdout.splitlines()[-1]
