"""The update path, end to end: the previous release -> this working tree, with a team's edits.

The previous release is built from this repo's history (PREVIOUS: main before the fleet-update
work; the repo has no release tags yet): a throwaway template repo holds its copier.yml,
template/ and hooks/ tagged v0.1.0, then this working tree's tagged v0.2.0 (built once per
xdist worker). For every combination of answers (tests/support.py `matrix()`: framework x every
subset of services, with Python version, metrics and tracing rotating), a project generated at
v0.1.0 gets a realistic set of team edits (code, a route, a chart value, the Makefile, the
README, new files), is updated to v0.2.0 with `copier update`, conflicts are counted and listed
(pytest's warnings summary), resolved keeping the team's side, and every line the team wrote must
still be there.
Then the project installs and passes its own `make lint test`: its whole suite, nothing skipped,
the team's tests in it (`tests/test_team.py`: the team's route and helper).

tests/test_generated_project.py runs the same `make lint test` on every combination as
generated; this runs it on every combination as updated, team edits merged in. Shared to keep
the cost down: one template repo per xdist worker, one mypy cache for every combination (the
dependencies' analysis is the same), the session's uv cache (`make install` links packages,
downloads nothing). test_generated_project's installed venvs are not reused: their editable
install points at their own project, so the tests would import the code before the merge.

Cost, CPU time (user + sys, every child process), measured on the shared 2-core machine at load
7-19: the module with `make test` on 2 combinations and the team's tests on the other 14: 331 s;
with `make test` on all 16: 519-595 s (two runs). The 14 added `make test` runs take 9-37 s each
(292 s in all; 39-90 tests per combination, 1155 in all), ~5 min of CPU, i.e. ~+2.5 min of wall
time on 2 idle cores (CPU / 2: the generated tests are CPU-bound; wall under load: 18 -> 18-39 min).
A run on the machine going idle (load 7 -> 0.5): 456 s of CPU, 8 min of wall.
Per combination: copier copy + update ~5 s, `make install` ~1.5 s, `make lint` 2-18 s (mypy).
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
#: The services PREVIOUS offers. A combination with a later one (s3) is generated at v0.1.0 without
#: it and takes it on with the update (`--data services=...`), as a team adopting it would.
PREVIOUS_SERVICES = ("postgres", "redis", "rabbitmq")
COMBOS = matrix()
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
    services = [s for s in combo["services"] if s in PREVIOUS_SERVICES]
    values = {k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in combo.items()}
    values["services"] = json.dumps(services)
    data = [a for k, v in values.items() for a in ("--data", f"{k}={v}")]
    copier("copy", "--trust", "--defaults", "--vcs-ref", "v0.1.0", *data,
           str(template.path), "svc", cwd=tmp_path, env=env)  # fmt: skip
    project = Repo(tmp_path / "svc", env)
    generated = project.commit("generated at v0.1.0")
    team_edits(project, combo["framework"])
    edited = project.commit("the team's edits")
    wanted = added_lines(project, generated, edited)

    adopted = ["--data", f"services={json.dumps(combo['services'])}"]
    copier("update", "--trust", "--defaults", *adopted, cwd=project.path, env=env)
    assert answers(project)["_commit"] == "v0.2.0"
    assert answers(project)["services"] == combo["services"]
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
    result = run("make", "test", cwd=project.path, env=project_env_vars)
    assert re.search(r"test_team\.py::test_team_ping PASSED", result.stdout), result.stdout[-3000:]
    assert "test_team.py::test_is_production PASSED" in result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary, summary
    assert not re.search(r" (failed|errors?|skipped|xfailed)\b", summary), summary
